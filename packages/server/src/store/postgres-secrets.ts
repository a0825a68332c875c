/**
 * The secret and grant operations of the PostgreSQL store: the sibling of sqlite-secrets.ts, with
 * the same checks, errors and audit entries. Each runs inside the one transaction
 * `PostgresStore` opens for it, under the owner-write advisory lock, so owner writes run one at
 * a time as under SQLite's single writer. Its audit entry is recorded with `tx.append` and
 * inserted when the operation is done. What differs, and why:
 *
 * - Agent reads are not serialised with owner writes by the owner lock. Each write here runs
 *   under its secret's advisory lock, exclusive (postgres-locks.ts; a new version and a delete
 *   take it with BEGIN, postgres.ts, a grant change once it has read the name): it waits
 *   for the fetches of the secret in flight, and later ones wait for it. So no read is served
 *   after the change that ended it, and no use of a limited grant is counted between reading
 *   the uses and carrying them onto the re-wrapped grants.
 */
import { equalBytes, KeyholeError } from "@keyhole/core";
import type { PgTx } from "./postgres-db.js";
import { secretLock } from "./postgres-locks.js";
import {
  activeGrant,
  activeGrantRows,
  agentRow,
  grantDetailSelect,
  insertGrant,
  pgBytes,
  secretById,
  secretByName,
  versionRow,
} from "./postgres-queries.js";
import {
  type AgentRow,
  bytes,
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

type GranteeRow = Pick<AgentRow, "id" | "name" | "enc_pk" | "key_sig" | "created_at"> &
  Pick<GrantRow, "not_after" | "allowed_hosts">;

/** `Store.readSecretForOwner`, inside a transaction. */
export async function readSecretForOwnerPg(
  tx: PgTx,
  name: string,
  now: number,
  audit: AuditRequest,
): Promise<OwnerSecretRead | null> {
  const secret = await secretByName(tx.sql, name);
  if (!secret) {
    tx.append(audit, { action: "secret.owner_read", result: "not_found", detail: `name=${name}` });
    return null;
  }
  const current = required(await versionRow(tx.sql, secret.id, secret.current_version));
  const rows = await tx.sql<GranteeRow[]>`
    SELECT a.id, a.name, a.enc_pk, a.key_sig, a.created_at, g.not_after, g.allowed_hosts
    FROM grants g JOIN agents a ON a.id = g.agent_id
    WHERE g.secret_id = ${secret.id} AND ${activeGrant(tx.sql, now)}
    ORDER BY a.name`;
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
  tx.append(audit, {
    action: "secret.owner_read",
    result: "ok",
    secretId: secret.id,
    secretVersion: secret.current_version,
  });
  return { secret: toSecret(secret), current: toVersion(current), grantees };
}

/** `Store.putSecretVersion`, inside a transaction. */
export async function putSecretVersionPg(
  tx: PgTx,
  write: SecretWrite,
  now: number,
  audit: AuditRequest,
): Promise<SecretWriteResult> {
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
  const existing = await secretByName(tx.sql, write.name);
  const created = write.expectedVersion === 0;
  let kept = new Map<string, GrantKept>();
  if (created) {
    if (existing) throw new KeyholeError("conflict", "a secret with this name exists");
    if (await secretById(tx.sql, write.id)) {
      throw new KeyholeError("conflict", "the secret id is taken");
    }
    // A new secret has no grants to cover.
    if (write.grants.length > 0) throw new KeyholeError("conflict", "the grant set changed");
    await tx.sql`
      INSERT INTO secrets (id, name, current_version, created_at, updated_at)
      VALUES (${write.id}, ${write.name}, ${write.version}, ${now}, ${now})`;
  } else {
    if (
      !existing ||
      existing.id !== write.id ||
      existing.current_version !== write.expectedVersion
    ) {
      throw new KeyholeError("conflict", "the secret changed");
    }
    const active = await activeGrantRows(tx.sql, "secret", write.id, now);
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
    await tx.sql`
      UPDATE secrets SET current_version = ${write.version}, updated_at = ${now},
        rotation_recommended = 0
      WHERE id = ${write.id}`;
  }
  await tx.sql`
    INSERT INTO secret_versions (secret_id, version, value, owner_wrap, owner_sig, created_at)
    VALUES (${write.id}, ${write.version}, ${pgBytes(write.value)}, ${pgBytes(write.ownerWrap)},
      ${pgBytes(write.ownerSig)}, ${now})`;
  // The old version's wraps go; expired grants and those of revoked agents are purged with them.
  await tx.sql`DELETE FROM grants WHERE secret_id = ${write.id}`;
  for (const grant of write.grants) {
    await insertGrant(tx.sql, grant, kept.get(grant.agentId) ?? newGrantKept(now));
  }
  tx.append(audit, {
    action: "secret.write",
    result: "ok",
    secretId: write.id,
    secretVersion: write.version,
    detail: created ? "created" : "",
  });
  return { id: write.id, name: write.name, version: write.version, created };
}

/** `Store.deleteSecret`, inside a transaction. */
export async function deleteSecretPg(
  tx: PgTx,
  name: string,
  audit: AuditRequest,
): Promise<boolean> {
  const secret = await secretByName(tx.sql, name);
  if (!secret) {
    tx.append(audit, { action: "secret.delete", result: "not_found", detail: `name=${name}` });
    return false;
  }
  // Versions, owner wraps, grants and agent wraps cascade.
  await tx.sql`DELETE FROM secrets WHERE id = ${secret.id}`;
  tx.append(audit, {
    action: "secret.delete",
    result: "ok",
    secretId: secret.id,
    secretVersion: secret.current_version,
  });
  return true;
}

/** `Store.addGrant`, inside a transaction. */
export async function addGrantPg(
  tx: PgTx,
  grant: NewLimitedGrant,
  now: number,
  audit: AuditRequest,
): Promise<GrantDetail | null> {
  await lockSecretById(tx, grant.secretId);
  const agent = await agentRow(tx.sql, grant.agentId);
  const secret = await secretById(tx.sql, grant.secretId);
  const agentActive =
    agent !== undefined &&
    agent.revoked_at === null &&
    (agent.expires_at === null || agent.expires_at > now);
  if (!agentActive || !secret) {
    tx.append(audit, {
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
  await tx.sql`DELETE FROM grants WHERE agent_id = ${pair.agentId} AND secret_id = ${pair.secretId}`;
  await insertGrant(tx.sql, grant, newGrantKept(now, grant.maxUses ?? 0));
  tx.append(audit, { action: "grant.add", result: "ok", ...pair, secretVersion: grant.version });
  const [row] = await tx.sql<GrantDetailRow[]>`${grantDetailSelect(tx.sql)}
    WHERE g.agent_id = ${pair.agentId} AND g.secret_id = ${pair.secretId}`;
  return toGrantDetail(required(row));
}

/** `Store.removeGrant`, inside a transaction. */
export async function removeGrantPg(
  tx: PgTx,
  agentId: string,
  secretId: string,
  audit: AuditRequest,
): Promise<boolean> {
  const pair = { agentId, secretId };
  await lockSecretById(tx, secretId);
  const [grant] = await tx.sql<Pick<GrantRow, "version">[]>`
    SELECT version FROM grants WHERE agent_id = ${agentId} AND secret_id = ${secretId}`;
  if (!grant) {
    tx.append(audit, { action: "grant.remove", result: "not_found", ...pair });
    return false;
  }
  await tx.sql`DELETE FROM grants WHERE agent_id = ${agentId} AND secret_id = ${secretId}`;
  // The agent may have read the value already: the upstream credential should be rotated.
  await tx.sql`UPDATE secrets SET rotation_recommended = 1 WHERE id = ${secretId}`;
  tx.append(audit, { action: "grant.remove", result: "ok", ...pair, secretVersion: grant.version });
  return true;
}

/**
 * Takes the secret's lock by its id (the lock is keyed by name, which a fetch knows). Owner
 * writes run one at a time, so the name cannot change between reading it and locking it.
 */
async function lockSecretById(tx: PgTx, secretId: string): Promise<void> {
  const secret = await secretById(tx.sql, secretId);
  if (secret) await tx.lock(secretLock(secret.name, "exclusive"));
}
