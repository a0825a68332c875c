/**
 * The agent operations of the PostgreSQL store, the siblings of sqlite-agents.ts and
 * sqlite-agent-fetch.ts with the same checks, results and audit entries. Each runs in the one
 * transaction `PostgresStore` opens for it; its audit entry is appended when it returns
 * (postgres-db.ts). What differs, and why:
 * - Each runs under its agent's advisory lock, taken with BEGIN (postgres-locks.ts): shared for
 *   the agent's own operations, exclusive for a revoke or rotate, so an agent's operation
 *   commits before a revoke or rotate of it, or runs after it and fails.
 * - A limited grant's use is counted with a conditional UPDATE, so concurrent fetches through
 *   several servers can never spend more than its budget.
 * - No `last_used_at` is written: it is read from the audit log (postgres-queries.ts).
 */
import { equalBytes, KeyholeError } from "@keyhole/core";
import type { PgTx } from "./postgres-db.js";
import {
  activeGrantRows,
  agentRow,
  agentSummary,
  checkPrincipal,
  insertGrant,
  insertToken,
  type PrincipalRow,
  pgBytes,
  principalRowSql,
  principalStillValid,
  retireTokens,
  secretByName,
} from "./postgres-queries.js";
import {
  bytes,
  keptByKey,
  newGrantKept,
  required,
  sameSet,
  toAgent,
  toGrant,
  toSecret,
} from "./sqlite-rows.js";
import type {
  AgentKeyUpdate,
  AgentPrincipal,
  AgentRecord,
  AgentSecret,
  AgentSummary,
  AuditRequest,
  NewAgent,
  NewGrant,
  NewToken,
  RevokeResult,
  RotateResult,
} from "./store.js";
import {
  assertGrantsFor,
  blastRadius,
  type FetchRow,
  grantOfFetchRow,
  type ReadCount,
} from "./store-rules.js";

/** A fetch row's columns when the secret, its grant or its ciphertext is missing. */
type NoFetchRow = { [column in keyof FetchRow]: null };

/** `Store.createAgent`, inside a transaction. */
export async function createAgentPg(
  tx: PgTx,
  agent: NewAgent,
  token: NewToken,
  grants: readonly NewGrant[],
  now: number,
  audit: AuditRequest,
): Promise<AgentSummary> {
  const { sql } = tx;
  if (await agentRow(sql, agent.id)) throw new KeyholeError("conflict", "the agent id is taken");
  const [named] = await sql`SELECT 1 FROM agents WHERE name = ${agent.name} AND revoked_at IS NULL`;
  if (named) throw new KeyholeError("conflict", "an agent with this name exists");
  assertGrantsFor(grants, agent.id, agent.encPk);
  await sql`
    INSERT INTO agents (id, name, enc_pk, created_at, key_sig, expires_at, allowed_cidrs,
      registered_at)
    VALUES (${agent.id}, ${agent.name}, ${pgBytes(agent.encPk)}, ${agent.createdAt},
      ${pgBytes(agent.keySig)}, ${agent.expiresAt}, ${JSON.stringify(agent.allowedCidrs)}, ${now})`;
  await insertToken(sql, agent.id, token, now);
  for (const grant of grants) await insertGrant(sql, grant, newGrantKept(now));
  tx.append(audit, { action: "agent.create", result: "ok", agentId: agent.id });
  return required(await agentSummary(sql, agent.id, now));
}

/** `Store.rotateAgent`, inside a transaction. */
export async function rotateAgentPg(
  tx: PgTx,
  update: AgentKeyUpdate,
  token: NewToken,
  grants: readonly NewGrant[],
  now: number,
  audit: AuditRequest,
): Promise<RotateResult | null> {
  const { sql } = tx;
  // Under the agent's exclusive lock (postgres.ts): no use of a limited grant is counted
  // between reading the uses below and carrying them over.
  const agent = await agentRow(sql, update.agentId);
  if (!agent || agent.revoked_at !== null) {
    tx.append(audit, { action: "agent.rotate", result: "not_found", agentId: update.agentId });
    return null;
  }
  if (!equalBytes(bytes(agent.enc_pk), update.expectedEncPk)) {
    throw new KeyholeError("conflict", "the agent changed");
  }
  // A rotate request delayed past a later one must not replace the newer key with an older one.
  if (update.createdAt < agent.created_at) {
    throw new KeyholeError("conflict", "the agent already has a newer key");
  }
  assertGrantsFor(grants, agent.id, update.encPk);
  const active = await activeGrantRows(sql, "agent", agent.id, now);
  if (
    !sameSet(
      active.map((g) => g.secret_id),
      grants.map((g) => g.secretId),
    )
  ) {
    throw new KeyholeError("conflict", "the agent's grants changed");
  }
  const kept = keptByKey(active, (g) => g.secret_id);
  // The old token dies in this transaction: there is never a moment with both or neither.
  const retiredTokenIds = await retireTokens(sql, agent.id, "rotate", now);
  await insertToken(sql, agent.id, token, now);
  await sql`
    UPDATE agents SET enc_pk = ${pgBytes(update.encPk)}, created_at = ${update.createdAt},
      key_sig = ${pgBytes(update.keySig)}
    WHERE id = ${agent.id}`;
  await sql`DELETE FROM grants WHERE agent_id = ${agent.id}`;
  for (const grant of grants) {
    await insertGrant(sql, grant, kept.get(grant.secretId) ?? newGrantKept(now));
  }
  tx.append(audit, { action: "agent.rotate", result: "ok", agentId: agent.id });
  return { agent: required(await agentSummary(sql, agent.id, now)), retiredTokenIds };
}

/** `Store.revokeAgent`, inside a transaction. */
export async function revokeAgentPg(
  tx: PgTx,
  agentId: string,
  now: number,
  audit: AuditRequest,
): Promise<RevokeResult | null> {
  const { sql } = tx;
  // Under the agent's exclusive lock (postgres.ts): the blast radius below counts every read
  // the log shows before this revoke; later fetches wait for it, then find no token.
  const agent = await agentRow(sql, agentId);
  if (!agent) {
    tx.append(audit, { action: "agent.revoke", result: "not_found", agentId });
    return null;
  }
  const alreadyRevoked = agent.revoked_at !== null;
  const grantRows = await sql<{ secret_id: string }[]>`
    SELECT secret_id FROM grants WHERE agent_id = ${agentId}`;
  const granted = new Set(grantRows.map((r) => r.secret_id));
  // The blast radius comes from the audit log itself: what it could read, and what it did.
  const reads = await sql<ReadCount[]>`
    SELECT secret_id, COUNT(*) AS reads, MIN(ts) AS first, MAX(ts) AS last FROM audit
    WHERE agent_id = ${agentId} AND action = 'secret.read' AND result = 'ok'
    GROUP BY secret_id`;
  let retiredTokenIds: Uint8Array[] = [];
  if (!alreadyRevoked) {
    await sql`UPDATE agents SET revoked_at = ${now} WHERE id = ${agentId}`;
    retiredTokenIds = await retireTokens(sql, agentId, "revoke", now);
    // It may have read any secret it held a grant on: the upstream credential should be rotated.
    await sql`
      UPDATE secrets SET rotation_recommended = 1
      WHERE id IN (SELECT secret_id FROM grants WHERE agent_id = ${agentId})`;
    await sql`DELETE FROM grants WHERE agent_id = ${agentId}`;
  }
  tx.append(audit, {
    action: "agent.revoke",
    result: "ok",
    agentId,
    detail: alreadyRevoked ? "already revoked" : "",
  });
  const ids = [...new Set([...granted, ...reads.map((r) => r.secret_id)])];
  const nameRows = await sql<{ id: string; name: string }[]>`
    SELECT id, name FROM secrets WHERE id = ANY(${ids}::text[])`;
  const names = new Map(nameRows.map((r) => [r.id, r.name]));
  return {
    agent: required(await agentSummary(sql, agentId, now)),
    blastRadius: blastRadius(granted, reads, names),
    alreadyRevoked,
    retiredTokenIds,
  };
}

/** `Store.agentSelf`, inside a transaction under the agent's shared lock (postgres.ts). */
export async function agentSelfPg(
  tx: PgTx,
  principal: AgentPrincipal,
  now: number,
  audit: AuditRequest,
): Promise<AgentRecord> {
  const agent = required(await agentRow(tx.sql, await checkPrincipal(tx.sql, principal, now)));
  tx.append(audit, { action: "agent.self", result: "ok", agentId: agent.id });
  return toAgent(agent);
}

/** `Store.listSecretsForAgent`, inside a transaction under the agent's shared lock. */
export async function listSecretsForAgentPg(
  tx: PgTx,
  principal: AgentPrincipal,
  now: number,
  audit: AuditRequest,
): Promise<{ name: string; version: number }[]> {
  const agentId = await checkPrincipal(tx.sql, principal, now);
  const rows = await tx.sql<{ name: string; version: number }[]>`
    SELECT s.name, s.current_version AS version FROM grants g
    JOIN secrets s ON s.id = g.secret_id
    WHERE g.agent_id = ${agentId} AND g.version = s.current_version
      AND (g.not_after = 0 OR g.not_after > ${now})
      AND (g.max_uses = 0 OR g.uses < g.max_uses)
    ORDER BY s.name`;
  tx.append(audit, { action: "secret.list", result: "ok", agentId });
  return rows.map((r) => ({ name: r.name, version: r.version }));
}

/**
 * `Store.getSecretForAgent`, inside a transaction under the agent's and the secret's locks
 * (shared, taken with BEGIN, postgres.ts): one statement re-checks the token and reads the
 * secret, the grant and the ciphertext. A
 * `grant rm`, a new version or a delete of the secret waits for this read, or commits first and
 * this read, whose statements start after the lock, finds no grant.
 */
export async function getSecretForAgentPg(
  tx: PgTx,
  principal: AgentPrincipal,
  name: string,
  now: number,
  audit: AuditRequest,
): Promise<AgentSecret | null> {
  const { sql } = tx;
  // The token re-check and the read in one statement: the principal's row, joined with the
  // secret, grant and ciphertext when there are any (all NULL otherwise).
  const [row] = await sql<(PrincipalRow & (FetchRow | NoFetchRow))[]>`
    SELECT p.*, f.* FROM (${principalRowSql(sql, principal)}) p
    LEFT JOIN LATERAL (
      SELECT s.*,
        g.agent_id AS g_agent_id, g.wrap AS g_wrap, g.issued_at AS g_issued_at,
        g.not_after AS g_not_after, g.allowed_hosts AS g_allowed_hosts,
        g.max_uses AS g_max_uses, g.uses AS g_uses, g.sig AS g_sig,
        g.created_at AS g_created_at, v.value AS value
      FROM secrets s
      JOIN grants g ON g.agent_id = ${principal.agentId} AND g.secret_id = s.id
        AND g.version = s.current_version AND (g.not_after = 0 OR g.not_after > ${now})
      JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
      WHERE s.name = ${name}
    ) f ON TRUE`;
  principalStillValid(row, principal, now);
  const agentId = principal.agentId;
  let grant = row.id === null ? undefined : grantOfFetchRow(row);
  if (row.id === null || grant === undefined) {
    // The rare path: tell a missing secret from a missing grant, for the owner's audit log.
    const secret = await secretByName(sql, name);
    if (!secret) {
      tx.append(audit, {
        action: "secret.read",
        result: "not_found",
        agentId,
        detail: `name=${name}`,
      });
    } else {
      tx.append(audit, {
        action: "secret.read",
        result: "denied",
        agentId,
        secretId: secret.id,
        secretVersion: secret.current_version,
        detail: "no active grant",
      });
    }
    return null;
  }
  if (grant.max_uses > 0) {
    // Counted only while budget is left, in one statement: concurrent reads through any number
    // of servers can never spend more than `max_uses`.
    const [counted] = await sql<{ uses: number }[]>`
      UPDATE grants SET uses = uses + 1
      WHERE agent_id = ${agentId} AND secret_id = ${row.id} AND uses < max_uses
      RETURNING uses`;
    if (counted === undefined) {
      tx.append(audit, {
        action: "secret.read",
        result: "denied",
        agentId,
        secretId: row.id,
        secretVersion: row.current_version,
        detail: `max_uses=${grant.max_uses} reached`,
      });
      return null;
    }
    grant = { ...grant, uses: counted.uses };
  }
  // A grant names a version that exists (foreign key): a missing one is a broken database.
  const value = required(row.value);
  tx.append(audit, {
    action: "secret.read",
    result: "ok",
    agentId,
    secretId: row.id,
    secretVersion: row.current_version,
  });
  return { secret: toSecret(row), value: bytes(value), grant: toGrant(grant) };
}
