/**
 * The PostgreSQL store: the sibling of the SQLite one behind the same `Store` interface and the
 * same contract suite, for several stateless servers on one database. Each operation is one
 * transaction, its audit entry appended last (postgres-db.ts says how servers stay correct
 * together). Reads go to any pooled connection: a commit is on disk (synchronous_commit) and
 * visible to every server before its answer leaves, so a write through one server is read
 * through another at once.
 */
import { AUDIT_GENESIS } from "@keyhole/core";
import {
  agentSelfPg,
  createAgentPg,
  getSecretForAgentPg,
  listSecretsForAgentPg,
  revokeAgentPg,
  rotateAgentPg,
} from "./postgres-agents.js";
import type { PgTx } from "./postgres-db.js";
import { PgDb, type PostgresStoreOptions, type Sql, type WriteKind } from "./postgres-db.js";
import { type AdvisoryLock, agentLock, secretLock } from "./postgres-locks.js";
import {
  activeGrant,
  agentSummary as agentSummaryOf,
  agentSummarySelect,
  grantDetailSelect,
  pgBytes,
  secretById,
  secretByName,
  versionRow,
} from "./postgres-queries.js";
import {
  addGrantPg,
  deleteSecretPg,
  putSecretVersionPg,
  readSecretForOwnerPg,
  removeGrantPg,
} from "./postgres-secrets.js";
import {
  type AgentRow,
  type AuditRow,
  type GrantDetailRow,
  nullable,
  parseStringList,
  type SecretRow,
  toAgentSummary,
  toAudit,
  toGrantDetail,
  toSecret,
  toVault,
  toVersion,
  type VaultRow,
} from "./sqlite-rows.js";
import type {
  AgentKeyUpdate,
  AgentPrincipal,
  AgentRecord,
  AgentSecret,
  AgentSummary,
  AuditDraft,
  AuditFilter,
  AuditHead,
  AuditRecord,
  AuditRequest,
  GrantDetail,
  NewAgent,
  NewGrant,
  NewLimitedGrant,
  NewToken,
  OwnerSecretRead,
  RevokeResult,
  RotateResult,
  SecretRecord,
  SecretSummary,
  SecretVersionInfo,
  SecretVersionRecord,
  SecretWrite,
  SecretWriteResult,
  Store,
  TokenLookup,
  VaultRecord,
  WriteStats,
} from "./store.js";

export type { PostgresStoreOptions } from "./postgres-db.js";
export { guardDriverRejections } from "./postgres-pool.js";
export { checkSharedKeys, type SharedKeyIds } from "./postgres-shared-keys.js";

/** Connects, applies pending migrations (once, whichever server is first) and opens the store. */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  return (await openPostgresBackend(options)).store;
}

/**
 * The store and its connection pool, which the server's shared authentication state
 * (auth/pg-auth-state.ts) uses too. Closing the store closes the pool.
 */
export async function openPostgresBackend(
  options: PostgresStoreOptions,
): Promise<{ store: Store; sql: Sql }> {
  const db = await PgDb.open(options);
  return { store: new PostgresStore(db), sql: db.sql };
}

type SummaryRow = AgentRow & { grant_count: number };

class PostgresStore implements Store {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  /**
   * Runs one operation in its own transaction, under `locks` (taken with BEGIN,
   * postgres-locks.ts), and gives its result.
   */
  async #write<T>(
    kind: WriteKind,
    fn: (tx: PgTx) => Promise<T>,
    locks: readonly AdvisoryLock[] = [],
  ): Promise<T> {
    return (await this.#db.write(kind, fn, locks)).value;
  }

  async getVault(): Promise<VaultRecord | null> {
    return this.#db.read(async (sql) => {
      const [row] = await sql<VaultRow[]>`SELECT * FROM vault WHERE singleton = 1`;
      return nullable(row, toVault);
    });
  }

  async ensureVault(vaultId: string, now: number): Promise<VaultRecord> {
    return this.#write("owner", async (tx) => {
      // Two servers starting together: the advisory lock orders them, the second keeps the first's.
      await tx.sql`INSERT INTO vault (singleton, vault_id, created_at)
        VALUES (1, ${vaultId}, ${now}) ON CONFLICT (singleton) DO NOTHING`;
      const [row] = await tx.sql<VaultRow[]>`SELECT * FROM vault WHERE singleton = 1`;
      return toVault(row as VaultRow);
    });
  }

  async initVault(
    ownerSignPk: Uint8Array,
    ownerEncPk: Uint8Array,
    audit: AuditRequest,
  ): Promise<VaultRecord | null> {
    return this.#write("owner", async (tx) => {
      const [vault] = await tx.sql<VaultRow[]>`SELECT * FROM vault WHERE singleton = 1`;
      if (vault === undefined) throw new Error("a row vanished inside its transaction");
      if (vault.owner_sign_pk !== null) {
        tx.append(audit, {
          action: "vault.init",
          result: "conflict",
          detail: "already initialized",
        });
        return null;
      }
      const [row] = await tx.sql<VaultRow[]>`
        UPDATE vault SET owner_sign_pk = ${pgBytes(ownerSignPk)},
          owner_enc_pk = ${pgBytes(ownerEncPk)}, initialized_at = ${audit.ts}
        WHERE singleton = 1 RETURNING *`;
      tx.append(audit, { action: "vault.init", result: "ok" });
      return toVault(row as VaultRow);
    });
  }

  async findAgentByTokenId(tokenId: Uint8Array): Promise<TokenLookup | null> {
    return this.#db.read(async (sql) => {
      // Only the columns authentication reads: this runs on every agent request.
      const [row] = await sql<
        (Pick<AgentRow, "id" | "revoked_at" | "expires_at" | "allowed_cidrs"> & {
          verifier: Buffer;
          pepper_kid: string;
        })[]
      >`SELECT a.id, a.revoked_at, a.expires_at, a.allowed_cidrs, t.verifier, t.pepper_kid
        FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
        WHERE t.token_id = ${pgBytes(tokenId)}`;
      if (!row) return null;
      const agent = {
        id: row.id,
        revokedAt: row.revoked_at,
        expiresAt: row.expires_at,
        allowedCidrs: parseStringList(row.allowed_cidrs),
      };
      return { agent, verifier: new Uint8Array(row.verifier), pepperKid: row.pepper_kid };
    });
  }

  async getAgent(agentId: string, now: number): Promise<AgentSummary | null> {
    return this.#db.read((sql) => agentSummaryOf(sql, agentId, now));
  }

  async findAgentByName(name: string, now: number): Promise<AgentSummary | null> {
    return this.#db.read(async (sql) => {
      const [row] = await sql<SummaryRow[]>`${agentSummarySelect(sql, now)} WHERE a.name = ${name}
        ORDER BY a.revoked_at IS NULL DESC, a.revoked_at DESC LIMIT 1`;
      return nullable(row, toAgentSummary);
    });
  }

  async listAgentIdsByName(name: string): Promise<string[]> {
    return this.#db.read(async (sql) => {
      const rows = await sql<{ id: string }[]>`SELECT id FROM agents WHERE name = ${name}`;
      return rows.map((r) => r.id);
    });
  }

  async listAgents(now: number): Promise<AgentSummary[]> {
    return this.#db.read(async (sql) => {
      const rows = await sql<SummaryRow[]>`${agentSummarySelect(sql, now)}
        ORDER BY a.name, a.registered_at`;
      return rows.map(toAgentSummary);
    });
  }

  async createAgent(
    agent: NewAgent,
    token: NewToken,
    grants: readonly NewGrant[],
    now: number,
    audit: AuditRequest,
  ): Promise<AgentSummary> {
    return this.#write("owner", (tx) => createAgentPg(tx, agent, token, grants, now, audit));
  }

  async rotateAgent(
    update: AgentKeyUpdate,
    token: NewToken,
    grants: readonly NewGrant[],
    now: number,
    audit: AuditRequest,
  ): Promise<RotateResult | null> {
    return this.#write(
      "owner",
      (tx) => rotateAgentPg(tx, update, token, grants, now, audit),
      // Waits for the agent's fetches in flight; later ones wait for this rotate.
      [agentLock(update.agentId, "exclusive")],
    );
  }

  async revokeAgent(
    agentId: string,
    now: number,
    audit: AuditRequest,
  ): Promise<RevokeResult | null> {
    return this.#write(
      "owner",
      (tx) => revokeAgentPg(tx, agentId, now, audit),
      // Waits for the agent's fetches in flight; later ones wait for this revoke.
      [agentLock(agentId, "exclusive")],
    );
  }

  async findRetiredTokenAgent(tokenId: Uint8Array): Promise<string | null> {
    return this.#db.read(async (sql) => {
      const [row] = await sql<{ agent_id: string }[]>`
        SELECT agent_id FROM retired_tokens WHERE token_id = ${pgBytes(tokenId)}`;
      return row?.agent_id ?? null;
    });
  }

  async listRetiredTokenIds(): Promise<Uint8Array[]> {
    return this.#db.read(async (sql) => {
      const rows = await sql<{ token_id: Buffer }[]>`
        SELECT token_id FROM retired_tokens ORDER BY ord`;
      return rows.map((r) => new Uint8Array(r.token_id));
    });
  }

  async agentSelf(
    principal: AgentPrincipal,
    now: number,
    audit: AuditRequest,
  ): Promise<AgentRecord> {
    return this.#write("agent", (tx) => agentSelfPg(tx, principal, now, audit), [
      agentLock(principal.agentId, "shared"),
    ]);
  }

  async listSecretsForAgent(
    principal: AgentPrincipal,
    now: number,
    audit: AuditRequest,
  ): Promise<{ name: string; version: number }[]> {
    return this.#write("agent", (tx) => listSecretsForAgentPg(tx, principal, now, audit), [
      agentLock(principal.agentId, "shared"),
    ]);
  }

  async getSecretForAgent(
    principal: AgentPrincipal,
    name: string,
    now: number,
    audit: AuditRequest,
  ): Promise<AgentSecret | null> {
    return this.#write("agent", (tx) => getSecretForAgentPg(tx, principal, name, now, audit), [
      agentLock(principal.agentId, "shared"),
      secretLock(name, "shared"),
    ]);
  }

  async getSecretByName(name: string): Promise<SecretRecord | null> {
    return this.#db.read(async (sql) => nullable(await secretByName(sql, name), toSecret));
  }

  async getSecretById(id: string): Promise<SecretRecord | null> {
    return this.#db.read(async (sql) => nullable(await secretById(sql, id), toSecret));
  }

  async getSecretVersion(secretId: string, version: number): Promise<SecretVersionRecord | null> {
    return this.#db.read(async (sql) =>
      nullable(await versionRow(sql, secretId, version), toVersion),
    );
  }

  async listSecrets(now: number): Promise<SecretSummary[]> {
    return this.#db.read(async (sql) => {
      const rows = await sql<(SecretRow & { size: number; grant_count: number })[]>`
        SELECT s.*, octet_length(v.value) AS size,
          (SELECT COUNT(*) FROM grants g JOIN agents a ON a.id = g.agent_id
           WHERE g.secret_id = s.id AND ${activeGrant(sql, now)}) AS grant_count
        FROM secrets s
        JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
        ORDER BY s.name`;
      return rows.map((r) => ({ ...toSecret(r), size: r.size, grantCount: r.grant_count }));
    });
  }

  async readSecretForOwner(
    name: string,
    now: number,
    audit: AuditRequest,
  ): Promise<OwnerSecretRead | null> {
    return this.#write("owner", (tx) => readSecretForOwnerPg(tx, name, now, audit));
  }

  async listSecretVersions(name: string): Promise<SecretVersionInfo[] | null> {
    return this.#db.read(async (sql) => {
      const secret = await secretByName(sql, name);
      if (!secret) return null;
      const rows = await sql<{ version: number; created_at: number; size: number }[]>`
        SELECT version, created_at, octet_length(value) AS size FROM secret_versions
        WHERE secret_id = ${secret.id} ORDER BY version`;
      return rows.map((r) => ({ version: r.version, createdAt: r.created_at, size: r.size }));
    });
  }

  async putSecretVersion(
    write: SecretWrite,
    now: number,
    audit: AuditRequest,
  ): Promise<SecretWriteResult> {
    return this.#write("owner", (tx) => putSecretVersionPg(tx, write, now, audit), [
      secretLock(write.name, "exclusive"),
    ]);
  }

  async deleteSecret(name: string, audit: AuditRequest): Promise<boolean> {
    return this.#write("owner", (tx) => deleteSecretPg(tx, name, audit), [
      secretLock(name, "exclusive"),
    ]);
  }

  async listGrants(filter: { agentIds?: readonly string[] } = {}): Promise<GrantDetail[]> {
    return this.#db.read(async (sql) => {
      const where =
        filter.agentIds === undefined
          ? sql``
          : sql`WHERE g.agent_id = ANY(${[...filter.agentIds]}::text[])`;
      const rows = await sql<GrantDetailRow[]>`${grantDetailSelect(sql)} ${where}
        ORDER BY a.name, s.name`;
      return rows.map(toGrantDetail);
    });
  }

  async listActiveGrantsForAgent(agentId: string, now: number): Promise<GrantDetail[]> {
    return this.#db.read(async (sql) => {
      const rows = await sql<GrantDetailRow[]>`${grantDetailSelect(sql)}
        WHERE g.agent_id = ${agentId} AND ${activeGrant(sql, now)} ORDER BY s.name`;
      return rows.map(toGrantDetail);
    });
  }

  async listActiveGrantsForSecret(secretId: string, now: number): Promise<GrantDetail[]> {
    return this.#db.read(async (sql) => {
      const rows = await sql<GrantDetailRow[]>`${grantDetailSelect(sql)}
        WHERE g.secret_id = ${secretId} AND ${activeGrant(sql, now)} ORDER BY a.name`;
      return rows.map(toGrantDetail);
    });
  }

  async addGrant(
    grant: NewLimitedGrant,
    now: number,
    audit: AuditRequest,
  ): Promise<GrantDetail | null> {
    return this.#write("owner", (tx) => addGrantPg(tx, grant, now, audit));
  }

  async removeGrant(agentId: string, secretId: string, audit: AuditRequest): Promise<boolean> {
    return this.#write("owner", (tx) => removeGrantPg(tx, agentId, secretId, audit));
  }

  async appendAudit(draft: AuditDraft): Promise<AuditRecord> {
    const { records } = await this.#db.write("agent", async (tx) => tx.appendDraft(draft));
    const [record] = records;
    if (record === undefined) throw new Error("the audit entry was not appended");
    return record;
  }

  async listAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    return this.#db.read(async (sql) => {
      const conditions = [sql`seq > ${filter.after ?? 0}`];
      if (filter.agentIds !== undefined) {
        conditions.push(sql`agent_id = ANY(${[...filter.agentIds]}::text[])`);
      }
      if (filter.secretIds !== undefined) {
        conditions.push(sql`secret_id = ANY(${[...filter.secretIds]}::text[])`);
      }
      if (filter.since !== undefined) conditions.push(sql`ts >= ${filter.since}`);
      const where = conditions.reduce((all, next) => sql`${all} AND ${next}`);
      const rows = await sql<AuditRow[]>`SELECT * FROM audit WHERE ${where}
        ORDER BY seq LIMIT ${filter.limit}`;
      return rows.map(toAudit);
    });
  }

  async auditHead(): Promise<AuditHead> {
    return this.#db.read(async (sql) => {
      const [head] = await sql<{ seq: number; hash: Buffer }[]>`
        SELECT seq, hash FROM audit_head WHERE singleton = 1`;
      if (head === undefined || head.seq === 0) return { size: 0, head: AUDIT_GENESIS };
      return { size: head.seq, head: new Uint8Array(head.hash) };
    });
  }

  /** Operations and commits; PostgreSQL's WAL flushes are its own (`pg_stat_wal`). */
  writeStats(): WriteStats {
    return this.#db.writeStats();
  }

  async close(): Promise<void> {
    await this.#db.close();
  }
}
