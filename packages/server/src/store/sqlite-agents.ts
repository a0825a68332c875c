/**
 * The agent operations of the SQLite store. Each runs inside the one transaction `SqliteStore`
 * opens for it, audit entry included.
 */
import { equalBytes, KeyholeError } from "@keyhole/core";
import type { SqliteDb } from "./sqlite-db.js";
import { bytes, keptByKey, newGrantKept, required, sameSet, toAgent } from "./sqlite-rows.js";
import type {
  AgentKeyUpdate,
  AgentPrincipal,
  AgentRecord,
  AgentSummary,
  AuditRequest,
  NewAgent,
  NewGrant,
  NewToken,
  RevokeResult,
  RotateResult,
} from "./store.js";
import { assertGrantsFor, blastRadius } from "./store-rules.js";

/** `Store.createAgent`, inside a transaction. */
export function createAgentTx(
  db: SqliteDb,
  agent: NewAgent,
  token: NewToken,
  grants: readonly NewGrant[],
  now: number,
  audit: AuditRequest,
): AgentSummary {
  if (db.agentRow(agent.id)) throw new KeyholeError("conflict", "the agent id is taken");
  if (
    db.q("SELECT 1 FROM agents WHERE name = @name AND revoked_at IS NULL").get({ name: agent.name })
  ) {
    throw new KeyholeError("conflict", "an agent with this name exists");
  }
  assertGrantsFor(grants, agent.id, agent.encPk);
  db.q(
    `INSERT INTO agents (id, name, enc_pk, created_at, key_sig, expires_at, allowed_cidrs,
       registered_at)
     VALUES (@id, @name, @encPk, @createdAt, @keySig, @expiresAt, @cidrs, @now)`,
  ).run({
    id: agent.id,
    name: agent.name,
    encPk: Buffer.from(agent.encPk),
    createdAt: agent.createdAt,
    keySig: Buffer.from(agent.keySig),
    expiresAt: agent.expiresAt,
    cidrs: JSON.stringify(agent.allowedCidrs),
    now,
  });
  db.insertToken(agent.id, token, now);
  for (const grant of grants) db.insertGrant(grant, newGrantKept(now));
  db.append(audit, { action: "agent.create", result: "ok", agentId: agent.id });
  return required(db.agentSummary(agent.id, now));
}

/** `Store.rotateAgent`, inside a transaction. */
export function rotateAgentTx(
  db: SqliteDb,
  update: AgentKeyUpdate,
  token: NewToken,
  grants: readonly NewGrant[],
  now: number,
  audit: AuditRequest,
): RotateResult | null {
  const agent = db.agentRow(update.agentId);
  if (!agent || agent.revoked_at !== null) {
    db.append(audit, { action: "agent.rotate", result: "not_found", agentId: update.agentId });
    return null;
  }
  if (!equalBytes(bytes(agent.enc_pk), update.expectedEncPk)) {
    throw new KeyholeError("conflict", "the agent changed");
  }
  // A rotate request delayed past a later one (a killed `agent rotate` whose request arrives
  // after its re-run) must not replace the newer key with an older one.
  if (update.createdAt < agent.created_at) {
    throw new KeyholeError("conflict", "the agent already has a newer key");
  }
  assertGrantsFor(grants, agent.id, update.encPk);
  const active = db.activeGrantRows("g.agent_id = @id", agent.id, now);
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
  const retiredTokenIds = db.retireTokens(agent.id, "rotate", now);
  db.insertToken(agent.id, token, now);
  db.q(
    "UPDATE agents SET enc_pk = @encPk, created_at = @createdAt, key_sig = @keySig WHERE id = @id",
  ).run({
    id: agent.id,
    encPk: Buffer.from(update.encPk),
    createdAt: update.createdAt,
    keySig: Buffer.from(update.keySig),
  });
  db.q("DELETE FROM grants WHERE agent_id = @id").run({ id: agent.id });
  for (const grant of grants) {
    db.insertGrant(grant, kept.get(grant.secretId) ?? newGrantKept(now));
  }
  db.append(audit, { action: "agent.rotate", result: "ok", agentId: agent.id });
  return { agent: required(db.agentSummary(agent.id, now)), retiredTokenIds };
}

/** `Store.revokeAgent`, inside a transaction. */
export function revokeAgentTx(
  db: SqliteDb,
  agentId: string,
  now: number,
  audit: AuditRequest,
): RevokeResult | null {
  const agent = db.agentRow(agentId);
  if (!agent) {
    db.append(audit, { action: "agent.revoke", result: "not_found", agentId });
    return null;
  }
  const alreadyRevoked = agent.revoked_at !== null;
  const granted = new Set(
    (
      db.q("SELECT secret_id FROM grants WHERE agent_id = @agentId").all({ agentId }) as {
        secret_id: string;
      }[]
    ).map((r) => r.secret_id),
  );
  // The blast radius comes from the audit log itself: what it could read, and what it did.
  const reads = db
    .q(
      `SELECT secret_id, COUNT(*) AS reads, MIN(ts) AS first, MAX(ts) AS last FROM audit
       WHERE agent_id = @agentId AND action = 'secret.read' AND result = 'ok'
       GROUP BY secret_id`,
    )
    .all({ agentId }) as { secret_id: string; reads: number; first: number; last: number }[];
  let retiredTokenIds: Uint8Array[] = [];
  if (!alreadyRevoked) {
    db.q("UPDATE agents SET revoked_at = @now WHERE id = @agentId").run({ agentId, now });
    retiredTokenIds = db.retireTokens(agentId, "revoke", now);
    // It may have read any secret it held a grant on (expired or not, the grant was on the
    // current version): as with `grant rm`, the upstream credential should be rotated.
    db.q(
      `UPDATE secrets SET rotation_recommended = 1
       WHERE id IN (SELECT secret_id FROM grants WHERE agent_id = @agentId)`,
    ).run({ agentId });
    db.q("DELETE FROM grants WHERE agent_id = @agentId").run({ agentId });
  }
  db.append(audit, {
    action: "agent.revoke",
    result: "ok",
    agentId,
    detail: alreadyRevoked ? "already revoked" : "",
  });
  const names = new Map<string, string>();
  for (const secretId of [...granted, ...reads.map((r) => r.secret_id)]) {
    const name = db.secretById(secretId)?.name;
    if (name !== undefined) names.set(secretId, name);
  }
  return {
    agent: required(db.agentSummary(agentId, now)),
    blastRadius: blastRadius(granted, reads, names),
    alreadyRevoked,
    retiredTokenIds,
  };
}

/** `Store.agentSelf`, inside a transaction. */
export function agentSelfTx(
  db: SqliteDb,
  principal: AgentPrincipal,
  now: number,
  audit: AuditRequest,
): AgentRecord {
  const agent = required(db.agentRow(db.checkPrincipal(principal, now)));
  db.append(audit, { action: "agent.self", result: "ok", agentId: agent.id });
  return toAgent(agent);
}

/** `Store.listSecretsForAgent`, inside a transaction. */
export function listSecretsForAgentTx(
  db: SqliteDb,
  principal: AgentPrincipal,
  now: number,
  audit: AuditRequest,
): { name: string; version: number }[] {
  const agentId = db.checkPrincipal(principal, now);
  const rows = db
    .q(
      `SELECT s.name, s.current_version AS version FROM grants g
       JOIN secrets s ON s.id = g.secret_id
       WHERE g.agent_id = @agentId AND g.version = s.current_version
         AND (g.not_after = 0 OR g.not_after > @now)
         AND (g.max_uses = 0 OR g.uses < g.max_uses)
       ORDER BY s.name`,
    )
    .all({ agentId, now }) as { name: string; version: number }[];
  db.append(audit, { action: "secret.list", result: "ok", agentId });
  return rows.map((r) => ({ name: r.name, version: r.version }));
}
