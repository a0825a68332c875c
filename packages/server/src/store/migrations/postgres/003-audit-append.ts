/**
 * The audit append as one function the database runs (issue 6: throughput on PostgreSQL).
 *
 * Every audited transaction, from every server, chains its entries onto `audit_head` under that
 * row's lock, held until COMMIT: the one serial section of the whole cluster. Done from Node
 * (lock the head; hash; insert; COMMIT) the lock was held across three round trips and, worse,
 * across the busy server's event loop between them: 2–7 ms per fetch, so a few hundred audited
 * fetches per second however many servers. Now the server sends `SELECT … FROM
 * keyhole_audit_append(…); COMMIT` as one message (postgres-db.ts): the lock is taken and
 * released inside the database, held for the hashing, the insert and the commit's WAL flush.
 *
 * What the function computes is FORMATS.md's chain, with the entry's bytes from core:
 *
 *   leaf          = SHA-256(0x00 ‖ u32(len(entry)) ‖ entry)
 *   entry_hash[n] = SHA-256(entry_hash[n-1] ‖ leaf[n])
 *
 * The server sends each draft's canonical entry bytes (core's `encodeAuditEntry`, the one
 * definition of the encoding) with `seq` 0; the function only writes the `seq` it assigns into
 * its fixed place, after the length-prefixed label. It refuses bytes that do not start with that
 * label and a zero `seq`, so a change to the format in core fails loudly here instead of chaining
 * wrong hashes. The columns are inserted from the same draft; every verifier recomputes the leaf
 * from the columns, so columns and bytes that disagreed would fail verification, not pass it.
 *
 * `drafts` is a JSON array of objects with the audit table's column names (less `seq` and
 * `hash`) plus `entry`, the hex of the entry bytes, in the order they are to be chained.
 */
export const name = "audit-append";

export const sql = `
CREATE FUNCTION keyhole_audit_append(drafts JSON)
RETURNS TABLE (appended_seq BIGINT, appended_hash BYTEA)
LANGUAGE plpgsql AS $$
DECLARE
  -- LP("keyhole/v1/audit-entry"): the label every entry starts with; seq follows it.
  label CONSTANT BYTEA := decode('00000016', 'hex') || convert_to('keyhole/v1/audit-entry', 'UTF8');
  zero_seq CONSTANT BYTEA := decode('0000000000000000', 'hex');
  head_seq BIGINT;
  head_hash BYTEA;
  draft JSON;
  entry BYTEA;
BEGIN
  IF drafts IS NULL OR json_typeof(drafts) <> 'array' OR json_array_length(drafts) = 0 THEN
    RAISE EXCEPTION 'keyhole: no audit drafts' USING ERRCODE = 'KH001';
  END IF;
  SELECT h.seq, h.hash INTO STRICT head_seq, head_hash
    FROM audit_head h WHERE h.singleton = 1 FOR UPDATE;
  FOR draft IN SELECT e.value FROM json_array_elements(drafts) WITH ORDINALITY AS e(value, n)
               ORDER BY e.n
  LOOP
    entry := decode(draft->>'entry', 'hex');
    IF entry IS NULL OR length(entry) < 34
       OR substring(entry FROM 1 FOR 26) <> label
       OR substring(entry FROM 27 FOR 8) <> zero_seq THEN
      RAISE EXCEPTION 'keyhole: an audit draft is not in the entry format this function knows'
        USING ERRCODE = 'KH002';
    END IF;
    head_seq := head_seq + 1;
    entry := overlay(entry PLACING int8send(head_seq) FROM 27 FOR 8);
    head_hash := sha256(head_hash || sha256(decode('00', 'hex') || int4send(length(entry)) || entry));
    INSERT INTO audit (seq, ts, request_id, actor_type, actor_id, action, result, agent_id,
      secret_id, secret_version, client_ip, user_agent, detail, hash)
    VALUES (head_seq, (draft->>'ts')::BIGINT, draft->>'request_id', draft->>'actor_type',
      draft->>'actor_id', draft->>'action', draft->>'result', draft->>'agent_id',
      draft->>'secret_id', (draft->>'secret_version')::INTEGER, draft->>'client_ip',
      draft->>'user_agent', draft->>'detail', head_hash);
    appended_seq := head_seq;
    appended_hash := head_hash;
    RETURN NEXT;
  END LOOP;
  UPDATE audit_head SET seq = head_seq, hash = head_hash WHERE singleton = 1;
END
$$;

-- Its tables are the ones beside it, whatever the caller's search_path: the schema this
-- migration runs in, named (a search_path kept as written, such as "$user", public, would be
-- resolved against each caller's role and could reach another vault's tables). pg_catalog
-- first so no table or function of ours shadows a built-in, pg_temp last so no caller's
-- temporary table shadows ours.
DO $pin$
BEGIN
  EXECUTE format(
    'ALTER FUNCTION keyhole_audit_append(json) SET search_path = pg_catalog, %I, pg_temp',
    current_schema());
END
$pin$;
`;
