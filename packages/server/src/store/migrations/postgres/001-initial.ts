/**
 * The PostgreSQL schema: the SQLite schema after its third step (same tables, columns and
 * meanings, so both adapters map rows alike), with PostgreSQL's types and what several servers
 * on one database need:
 *
 * - `audit_head`: one row holding the chain's last `seq` and hash. Every append locks it
 *   (`SELECT … FOR UPDATE`) at the end of its transaction, so appends from every server are
 *   serialised and the chain stays one gap-free sequence; a row lock, unlike an advisory lock,
 *   also exists in PostgreSQL-compatible distributed databases.
 * - `audit_agent_use`: the index that answers an agent's `last_used_at` from the log itself, so
 *   concurrent fetches by one agent never queue on its `agents` row (docs/scaling.md).
 * - Names sort and compare byte by byte (`COLLATE "C"`), as in SQLite, whatever the database's
 *   locale: listings come out in the same order from both adapters.
 * - Times are BIGINT milliseconds, byte strings BYTEA; append-only tables refuse UPDATE, DELETE
 *   and TRUNCATE in triggers (a guard against our own bugs, as in SQLite).
 */
export const name = "initial";

export const sql = `
CREATE TABLE vault (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  vault_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  owner_sign_pk BYTEA,
  owner_enc_pk BYTEA,
  initialized_at BIGINT
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL,
  enc_pk BYTEA NOT NULL,
  created_at BIGINT NOT NULL,
  key_sig BYTEA NOT NULL,
  expires_at BIGINT,
  revoked_at BIGINT,
  registered_at BIGINT NOT NULL,
  allowed_cidrs TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX agents_active_name ON agents (name) WHERE revoked_at IS NULL;
CREATE INDEX agents_name ON agents (name, revoked_at);

CREATE TABLE agent_tokens (
  token_id BYTEA PRIMARY KEY,
  agent_id TEXT NOT NULL UNIQUE REFERENCES agents (id) ON DELETE CASCADE,
  verifier BYTEA NOT NULL,
  pepper_kid TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE retired_tokens (
  token_id BYTEA PRIMARY KEY,
  agent_id TEXT NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('revoke', 'rotate')),
  retired_at BIGINT NOT NULL,
  -- listRetiredTokenIds returns them in the order they were retired.
  ord BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE secrets (
  id TEXT PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL UNIQUE,
  current_version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  rotation_recommended INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE secret_versions (
  secret_id TEXT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  value BYTEA NOT NULL,
  owner_wrap BYTEA NOT NULL,
  owner_sig BYTEA,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (secret_id, version)
);

CREATE TABLE grants (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  secret_id TEXT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  wrap BYTEA NOT NULL,
  issued_at BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  allowed_hosts TEXT NOT NULL,
  sig BYTEA NOT NULL,
  created_at BIGINT NOT NULL,
  max_uses INTEGER NOT NULL DEFAULT 0 CHECK (max_uses >= 0),
  uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
  PRIMARY KEY (agent_id, secret_id),
  FOREIGN KEY (secret_id, version) REFERENCES secret_versions (secret_id, version) ON DELETE CASCADE
);
CREATE INDEX grants_secret ON grants (secret_id);

CREATE TABLE audit (
  seq BIGINT PRIMARY KEY,
  ts BIGINT NOT NULL,
  request_id TEXT NOT NULL,
  actor_type TEXT NOT NULL,
  actor_id TEXT NOT NULL,
  action TEXT NOT NULL,
  result TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  secret_id TEXT NOT NULL,
  secret_version INTEGER NOT NULL,
  client_ip TEXT NOT NULL,
  user_agent TEXT NOT NULL,
  detail TEXT NOT NULL,
  hash BYTEA NOT NULL
);
CREATE INDEX audit_agent ON audit (agent_id, seq);
CREATE INDEX audit_secret ON audit (secret_id, seq);
CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_agent_use ON audit (actor_id, seq) WHERE actor_type = 'agent';

CREATE TABLE audit_head (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  seq BIGINT NOT NULL,
  hash BYTEA NOT NULL
);
-- The genesis: no entry yet, and the 32 zero bytes the first entry chains onto.
INSERT INTO audit_head (singleton, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION keyhole_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION keyhole_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
  FOR EACH STATEMENT EXECUTE FUNCTION keyhole_append_only();
CREATE TRIGGER retired_tokens_append_only BEFORE UPDATE OR DELETE ON retired_tokens
  FOR EACH ROW EXECUTE FUNCTION keyhole_append_only();
CREATE TRIGGER retired_tokens_no_truncate BEFORE TRUNCATE ON retired_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION keyhole_append_only();
`;
