/**
 * The secret and grant operations of the SQLite store. Each runs inside the one transaction
 * `SqliteStore` opens for it, audit entry included.
 */
import { equalBytes, KeyholeError } from "@keyhole/core";
import type { SqliteDb } from "./sqlite-db.js";
import {
  ACTIVE_GRANT,
  type AgentRow,
  bytes,
  GRANT_DETAIL,
  type GrantDetailRow,
  type GrantKept,
  type GrantRow,
  keptByKey,
  newGrantKept,
  parseStringList,
  required,
  sameSet,
  toGrantDetail,
  toSecret,
  toVersion,
} from "./sqlite-rows.js";
import type {
  AuditRequest,
  GrantDetail,
  NewLimitedGrant,
  OwnerSecretRead,
  SecretGrantee,
  SecretWrite,
  SecretWriteResult,
} from "./store.js";

/** `Store.readSecretForOwner`, inside a transaction. */
export function readSecretForOwnerTx(
  db: SqliteDb,
  name: string,
  now: number,
  audit: AuditRequest,
): OwnerSecretRead | null {
  const secret = db.secretByName(name);
  if (!secret) {
    db.append(audit, { action: "secret.owner_read", result: "not_found", detail: `name=${name}` });
    return null;
  }
  const current = required(db.versionRow(secret.id, secret.current_version));
  const rows = db
    .q(
      `SELECT a.id, a.name, a.enc_pk, a.key_sig, a.created_at, g.not_after, g.allowed_hosts
       FROM grants g JOIN agents a ON a.id = g.agent_id
       WHERE g.secret_id = @secretId AND ${ACTIVE_GRANT} ORDER BY a.name`,
    )
    .all({ secretId: secret.id, now }) as (AgentRow & {
    not_after: number;
    allowed_hosts: string;
  })[];
  const grantees = rows.map(
    (r): SecretGrantee => ({
      agentId: r.id,
      agentName: r.name,
      encPk: bytes(r.enc_pk),
      keySig: bytes(r.key_sig),
      agentCreatedAt: r.created_at,
      notAfter: r.not_after,
      allowedHosts: parseStringList(r.allowed_hosts),
    }),
  );
  db.append(audit, {
    action: "secret.owner_read",
    result: "ok",
    secretId: secret.id,
    secretVersion: secret.current_version,
  });
  return { secret: toSecret(secret), current: toVersion(current), grantees };
}

/** `Store.putSecretVersion`, inside a transaction. */
export function putSecretVersionTx(
  db: SqliteDb,
  write: SecretWrite,
  now: number,
  audit: AuditRequest,
): SecretWriteResult {
  if (!Number.isSafeInteger(write.expectedVersion) || write.version !== write.expectedVersion + 1) {
    throw new KeyholeError("bad_request", "version must be expected_version + 1");
  }
  for (const grant of write.grants) {
    if (grant.secretId !== write.id || grant.version !== write.version) {
      throw new KeyholeError("bad_request", "a grant names another secret or version");
    }
  }
  if (new Set(write.grants.map((g) => g.agentId)).size !== write.grants.length) {
    throw new KeyholeError("bad_request", "duplicate grant");
  }
  const existing = db.secretByName(write.name);
  const created = write.expectedVersion === 0;
  let kept = new Map<string, GrantKept>();
  if (created) {
    if (existing) throw new KeyholeError("conflict", "a secret with this name exists");
    if (db.secretById(write.id)) throw new KeyholeError("conflict", "the secret id is taken");
    // A new secret has no grants to cover.
    if (write.grants.length > 0) throw new KeyholeError("conflict", "the grant set changed");
    db.q(
      `INSERT INTO secrets (id, name, current_version, created_at, updated_at)
       VALUES (@id, @name, @version, @now, @now)`,
    ).run({ id: write.id, name: write.name, version: write.version, now });
  } else {
    if (
      !existing ||
      existing.id !== write.id ||
      existing.current_version !== write.expectedVersion
    ) {
      throw new KeyholeError("conflict", "the secret changed");
    }
    const active = db.activeGrantRows("g.secret_id = @id", write.id, now);
    const keys = new Map(active.map((g) => [g.agent_id, bytes(g.enc_pk)]));
    // Every active grantee gets a wrap of the new version, made for the key it has now.
    const covered =
      sameSet(
        [...keys.keys()],
        write.grants.map((g) => g.agentId),
      ) &&
      write.grants.every((g) => equalBytes(keys.get(g.agentId) ?? new Uint8Array(), g.agentEncPk));
    if (!covered) throw new KeyholeError("conflict", "the grant set changed");
    kept = keptByKey(active, (g) => g.agent_id);
    db.q(
      `UPDATE secrets SET current_version = @version, updated_at = @now, rotation_recommended = 0
       WHERE id = @id`,
    ).run({ id: write.id, version: write.version, now });
  }
  db.q(
    `INSERT INTO secret_versions (secret_id, version, value, owner_wrap, owner_sig, created_at)
     VALUES (@id, @version, @value, @ownerWrap, @ownerSig, @now)`,
  ).run({
    id: write.id,
    version: write.version,
    value: Buffer.from(write.value),
    ownerWrap: Buffer.from(write.ownerWrap),
    ownerSig: Buffer.from(write.ownerSig),
    now,
  });
  // The old version's wraps go; expired grants and those of revoked agents are purged with them.
  db.q("DELETE FROM grants WHERE secret_id = @id").run({ id: write.id });
  for (const grant of write.grants) {
    db.insertGrant(grant, kept.get(grant.agentId) ?? newGrantKept(now));
  }
  db.append(audit, {
    action: "secret.write",
    result: "ok",
    secretId: write.id,
    secretVersion: write.version,
    detail: created ? "created" : "",
  });
  return { id: write.id, name: write.name, version: write.version, created };
}

/** `Store.deleteSecret`, inside a transaction. */
export function deleteSecretTx(db: SqliteDb, name: string, audit: AuditRequest): boolean {
  const secret = db.secretByName(name);
  if (!secret) {
    db.append(audit, { action: "secret.delete", result: "not_found", detail: `name=${name}` });
    return false;
  }
  // Versions, owner wraps, grants and agent wraps cascade.
  db.q("DELETE FROM secrets WHERE id = @id").run({ id: secret.id });
  db.append(audit, {
    action: "secret.delete",
    result: "ok",
    secretId: secret.id,
    secretVersion: secret.current_version,
  });
  return true;
}

/** `Store.addGrant`, inside a transaction. */
export function addGrantTx(
  db: SqliteDb,
  grant: NewLimitedGrant,
  now: number,
  audit: AuditRequest,
): GrantDetail | null {
  const agent = db.agentRow(grant.agentId);
  const secret = db.secretById(grant.secretId);
  const agentActive =
    agent !== undefined &&
    agent.revoked_at === null &&
    (agent.expires_at === null || agent.expires_at > now);
  if (!agentActive || !secret) {
    db.append(audit, {
      action: "grant.add",
      result: "not_found",
      agentId: grant.agentId,
      secretId: grant.secretId,
    });
    return null;
  }
  if (secret.current_version !== grant.version) {
    throw new KeyholeError("conflict", "the secret changed");
  }
  if (!equalBytes(bytes(agent.enc_pk), grant.agentEncPk)) {
    throw new KeyholeError("conflict", "the agent changed");
  }
  const pair = { agentId: grant.agentId, secretId: grant.secretId };
  db.q("DELETE FROM grants WHERE agent_id = @agentId AND secret_id = @secretId").run(pair);
  db.insertGrant(grant, newGrantKept(now, grant.maxUses ?? 0));
  db.append(audit, { action: "grant.add", result: "ok", ...pair, secretVersion: grant.version });
  const row = db
    .q(`${GRANT_DETAIL} WHERE g.agent_id = @agentId AND g.secret_id = @secretId`)
    .get(pair) as GrantDetailRow;
  return toGrantDetail(row);
}

/** `Store.removeGrant`, inside a transaction. */
export function removeGrantTx(
  db: SqliteDb,
  agentId: string,
  secretId: string,
  audit: AuditRequest,
): boolean {
  const pair = { agentId, secretId };
  const grant = db
    .q("SELECT * FROM grants WHERE agent_id = @agentId AND secret_id = @secretId")
    .get(pair) as GrantRow | undefined;
  if (!grant) {
    db.append(audit, { action: "grant.remove", result: "not_found", ...pair });
    return false;
  }
  db.q("DELETE FROM grants WHERE agent_id = @agentId AND secret_id = @secretId").run(pair);
  // The agent may have read the value already: the upstream credential should be rotated.
  db.q("UPDATE secrets SET rotation_recommended = 1 WHERE id = @secretId").run({ secretId });
  db.append(audit, { action: "grant.remove", result: "ok", ...pair, secretVersion: grant.version });
  return true;
}
