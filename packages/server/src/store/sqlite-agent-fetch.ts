/**
 * The agent's fetch, the hot path of the server: one statement reads the secret by name, the
 * agent's grant on its current version and that version's ciphertext, where three lookups would
 * each cost a statement's overhead on every fetch.
 */
import type { SqliteDb } from "./sqlite-db.js";
import { bytes, required, toGrant, toSecret } from "./sqlite-rows.js";
import type { AgentPrincipal, AgentSecret, AuditRequest } from "./store.js";
import { type FetchRow, grantOfFetchRow } from "./store-rules.js";

/** A `FetchRow` (store-rules.ts) for `@name`, as `@agentId` at `@now`. */
const FETCH = `SELECT s.*,
    g.agent_id AS g_agent_id, g.wrap AS g_wrap, g.issued_at AS g_issued_at,
    g.not_after AS g_not_after, g.allowed_hosts AS g_allowed_hosts, g.max_uses AS g_max_uses,
    g.uses AS g_uses, g.sig AS g_sig, g.created_at AS g_created_at,
    v.value AS value
  FROM secrets s
  LEFT JOIN grants g ON g.agent_id = @agentId AND g.secret_id = s.id
    AND g.version = s.current_version AND (g.not_after = 0 OR g.not_after > @now)
  LEFT JOIN secret_versions v ON g.agent_id IS NOT NULL
    AND v.secret_id = s.id AND v.version = s.current_version
  WHERE s.name = @name`;

/** `Store.getSecretForAgent`, inside a transaction. */
export function getSecretForAgentTx(
  db: SqliteDb,
  principal: AgentPrincipal,
  name: string,
  now: number,
  audit: AuditRequest,
): AgentSecret | null {
  const agentId = db.checkPrincipal(principal, now);
  const row = db.q(FETCH).get({ agentId, name, now }) as FetchRow | undefined;
  if (!row) {
    db.append(audit, {
      action: "secret.read",
      result: "not_found",
      agentId,
      detail: `name=${name}`,
    });
    return null;
  }
  const grant = grantOfFetchRow(row);
  const spent = grant !== undefined && grant.max_uses > 0 && grant.uses >= grant.max_uses;
  if (!grant || spent) {
    db.append(audit, {
      action: "secret.read",
      result: "denied",
      agentId,
      secretId: row.id,
      secretVersion: row.current_version,
      detail: spent ? `max_uses=${grant.max_uses} reached` : "no active grant",
    });
    return null;
  }
  if (grant.max_uses > 0) {
    // Counted in the read's own transaction: concurrent reads can never overspend the budget.
    db.q(
      "UPDATE grants SET uses = uses + 1 WHERE agent_id = @agentId AND secret_id = @secretId",
    ).run({ agentId, secretId: row.id });
  }
  // A grant names a version that exists (foreign key): a missing one is a broken database.
  const value = required(row.value);
  db.append(audit, {
    action: "secret.read",
    result: "ok",
    agentId,
    secretId: row.id,
    secretVersion: row.current_version,
  });
  const used = grant.max_uses > 0 ? { ...grant, uses: grant.uses + 1 } : grant;
  return { secret: toSecret(row), value: bytes(value), grant: toGrant(used) };
}
