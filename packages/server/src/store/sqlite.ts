/**
 * The SQLite adapter of `Store` (better-sqlite3): one file, WAL, every answer held until the
 * commits it depends on are fsynced (sqlite-db.ts, durability-gate.ts) so an acknowledged write
 * survives `kill -9` and power loss, foreign keys on, and every operation in one
 * `BEGIN IMMEDIATE` transaction (shared by one event-loop turn's writes), audit entry included. better-sqlite3 is synchronous; the async
 * interface is what a network database (the PostgreSQL sibling) needs, and costs nothing here.
 */
import { AUDIT_GENESIS, type AuditFields } from "@keyhole/core";
import { getSecretForAgentTx } from "./sqlite-agent-fetch.js";
import {
  agentSelfTx,
  createAgentTx,
  listSecretsForAgentTx,
  revokeAgentTx,
  rotateAgentTx,
} from "./sqlite-agents.js";
import { SqliteDb } from "./sqlite-db.js";
import {
  ACTIVE_GRANT,
  AGENT_SUMMARY,
  type AgentRow,
  type AuditRow,
  blob,
  bytes,
  GRANT_DETAIL,
  type GrantDetailRow,
  nullable,
  type Params,
  parseStringList,
  placeholders,
  required,
  type SecretRow,
  toAgentSummary,
  toAudit,
  toGrantDetail,
  toSecret,
  toVault,
  toVersion,
  type VaultRow,
} from "./sqlite-rows.js";
import {
  addGrantTx,
  deleteSecretTx,
  putSecretVersionTx,
  readSecretForOwnerTx,
  removeGrantTx,
} from "./sqlite-secrets.js";
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

/** How to open the SQLite store. */
export interface SqliteStoreOptions {
  /** The database file (created with mode 0600 if missing). */
  readonly path: string;
  /**
   * Test-only fault injection: called inside the transaction just before each audit insert.
   * Throwing from it must fail the whole operation (SECURITY-TESTS #18).
   */
  readonly beforeAuditAppend?: (entry: AuditFields) => void;
  /**
   * Test-only fault injection: receives a function that runs a PRAGMA on the store's own
   * connection (`max_page_count` for a full disk, `query_only` for a read-only one).
   */
  readonly pragmaHook?: (run: (pragma: string) => unknown) => void;
  /** Test-only fault injection: wraps the fsync of the WAL (wal-sync.ts), to fail it. */
  readonly syncHook?: (sync: () => Promise<void>) => Promise<void>;
}

/** Opens the SQLite store, creating the file and applying pending migrations. */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options);
}

type SummaryRow = AgentRow & { grant_count: number };

class SqliteStore implements Store {
  readonly #db: SqliteDb;

  constructor(options: SqliteStoreOptions) {
    this.#db = new SqliteDb(options.path, options);
  }

  async getVault(): Promise<VaultRecord | null> {
    return this.#db.read(() => this.#readVault());
  }

  async ensureVault(vaultId: string, now: number): Promise<VaultRecord> {
    return this.#db.write(() => {
      const existing = this.#readVault();
      if (existing) return existing;
      this.#db
        .q("INSERT INTO vault (singleton, vault_id, created_at) VALUES (1, @vaultId, @now)")
        .run({ vaultId, now });
      return required(this.#readVault());
    });
  }

  async initVault(
    ownerSignPk: Uint8Array,
    ownerEncPk: Uint8Array,
    audit: AuditRequest,
  ): Promise<VaultRecord | null> {
    return this.#db.write(() => {
      const vault = required(this.#readVault());
      if (vault.ownerSignPk !== null) {
        this.#db.append(audit, {
          action: "vault.init",
          result: "conflict",
          detail: "already initialized",
        });
        return null;
      }
      this.#db
        .q(
          `UPDATE vault SET owner_sign_pk = @sign, owner_enc_pk = @enc, initialized_at = @ts
           WHERE singleton = 1`,
        )
        .run({ sign: Buffer.from(ownerSignPk), enc: Buffer.from(ownerEncPk), ts: audit.ts });
      this.#db.append(audit, { action: "vault.init", result: "ok" });
      return this.#readVault();
    });
  }

  async findAgentByTokenId(tokenId: Uint8Array): Promise<TokenLookup | null> {
    // Authentication only: every request it admits is answered after a synced write or read.
    return this.#db.readUnsynced(() => {
      // Only the columns authentication reads: this runs on every agent request.
      const row = this.#db
        .q(
          `SELECT a.id, a.revoked_at, a.expires_at, a.allowed_cidrs, t.verifier, t.pepper_kid
           FROM agent_tokens t JOIN agents a ON a.id = t.agent_id WHERE t.token_id = @tokenId`,
        )
        .get({ tokenId: Buffer.from(tokenId) }) as
        | (Pick<AgentRow, "id" | "revoked_at" | "expires_at" | "allowed_cidrs"> & {
            verifier: Buffer;
            pepper_kid: string;
          })
        | undefined;
      if (!row) return null;
      const agent = {
        id: row.id,
        revokedAt: row.revoked_at,
        expiresAt: row.expires_at,
        allowedCidrs: parseStringList(row.allowed_cidrs),
      };
      return { agent, verifier: bytes(row.verifier), pepperKid: row.pepper_kid };
    });
  }

  async getAgent(agentId: string, now: number): Promise<AgentSummary | null> {
    return this.#db.read(() => this.#db.agentSummary(agentId, now));
  }

  async findAgentByName(name: string, now: number): Promise<AgentSummary | null> {
    return this.#db.read(() => {
      const row = this.#db
        .q(
          `${AGENT_SUMMARY} WHERE a.name = @name
           ORDER BY a.revoked_at IS NULL DESC, a.revoked_at DESC LIMIT 1`,
        )
        .get({ name, now }) as SummaryRow | undefined;
      return nullable(row, toAgentSummary);
    });
  }

  async listAgentIdsByName(name: string): Promise<string[]> {
    return this.#db.read(() =>
      (
        this.#db.q("SELECT id FROM agents WHERE name = @name").all({ name }) as { id: string }[]
      ).map((r) => r.id),
    );
  }

  async listAgents(now: number): Promise<AgentSummary[]> {
    return this.#db.read(() =>
      (
        this.#db.q(`${AGENT_SUMMARY} ORDER BY a.name, a.registered_at`).all({ now }) as SummaryRow[]
      ).map(toAgentSummary),
    );
  }

  async createAgent(
    agent: NewAgent,
    token: NewToken,
    grants: readonly NewGrant[],
    now: number,
    audit: AuditRequest,
  ): Promise<AgentSummary> {
    return this.#db.write(() => createAgentTx(this.#db, agent, token, grants, now, audit));
  }

  async rotateAgent(
    update: AgentKeyUpdate,
    token: NewToken,
    grants: readonly NewGrant[],
    now: number,
    audit: AuditRequest,
  ): Promise<RotateResult | null> {
    return this.#db.write(() => rotateAgentTx(this.#db, update, token, grants, now, audit));
  }

  async revokeAgent(
    agentId: string,
    now: number,
    audit: AuditRequest,
  ): Promise<RevokeResult | null> {
    return this.#db.write(() => revokeAgentTx(this.#db, agentId, now, audit));
  }

  async findRetiredTokenAgent(tokenId: Uint8Array): Promise<string | null> {
    return this.#db.read(() => {
      const row = this.#db
        .q("SELECT agent_id FROM retired_tokens WHERE token_id = @t")
        .get({ t: blob(tokenId) }) as { agent_id: string } | undefined;
      return row?.agent_id ?? null;
    });
  }

  async listRetiredTokenIds(): Promise<Uint8Array[]> {
    return this.#db.read(() =>
      (
        this.#db.q("SELECT token_id FROM retired_tokens ORDER BY rowid").all() as {
          token_id: Buffer;
        }[]
      ).map((r) => bytes(r.token_id)),
    );
  }

  async agentSelf(
    principal: AgentPrincipal,
    now: number,
    audit: AuditRequest,
  ): Promise<AgentRecord> {
    return this.#db.write(() => agentSelfTx(this.#db, principal, now, audit));
  }

  async listSecretsForAgent(
    principal: AgentPrincipal,
    now: number,
    audit: AuditRequest,
  ): Promise<{ name: string; version: number }[]> {
    return this.#db.write(() => listSecretsForAgentTx(this.#db, principal, now, audit));
  }

  async getSecretForAgent(
    principal: AgentPrincipal,
    name: string,
    now: number,
    audit: AuditRequest,
  ): Promise<AgentSecret | null> {
    return this.#db.write(() => getSecretForAgentTx(this.#db, principal, name, now, audit));
  }

  async getSecretByName(name: string): Promise<SecretRecord | null> {
    return this.#db.read(() => nullable(this.#db.secretByName(name), toSecret));
  }

  async getSecretById(id: string): Promise<SecretRecord | null> {
    return this.#db.read(() => nullable(this.#db.secretById(id), toSecret));
  }

  async getSecretVersion(secretId: string, version: number): Promise<SecretVersionRecord | null> {
    return this.#db.read(() => nullable(this.#db.versionRow(secretId, version), toVersion));
  }

  async listSecrets(now: number): Promise<SecretSummary[]> {
    return this.#db.read(() => {
      const rows = this.#db
        .q(
          `SELECT s.*, length(v.value) AS size,
             (SELECT COUNT(*) FROM grants g JOIN agents a ON a.id = g.agent_id
              WHERE g.secret_id = s.id AND ${ACTIVE_GRANT}) AS grant_count
           FROM secrets s
           JOIN secret_versions v ON v.secret_id = s.id AND v.version = s.current_version
           ORDER BY s.name`,
        )
        .all({ now }) as (SecretRow & { size: number; grant_count: number })[];
      return rows.map((r) => ({ ...toSecret(r), size: r.size, grantCount: r.grant_count }));
    });
  }

  async readSecretForOwner(
    name: string,
    now: number,
    audit: AuditRequest,
  ): Promise<OwnerSecretRead | null> {
    return this.#db.write(() => readSecretForOwnerTx(this.#db, name, now, audit));
  }

  async listSecretVersions(name: string): Promise<SecretVersionInfo[] | null> {
    return this.#db.read(() => {
      const secret = this.#db.secretByName(name);
      if (!secret) return null;
      const rows = this.#db
        .q(
          `SELECT version, created_at, length(value) AS size FROM secret_versions
           WHERE secret_id = @id ORDER BY version`,
        )
        .all({ id: secret.id }) as { version: number; created_at: number; size: number }[];
      return rows.map((r) => ({ version: r.version, createdAt: r.created_at, size: r.size }));
    });
  }

  async putSecretVersion(
    write: SecretWrite,
    now: number,
    audit: AuditRequest,
  ): Promise<SecretWriteResult> {
    return this.#db.write(() => putSecretVersionTx(this.#db, write, now, audit));
  }

  async deleteSecret(name: string, audit: AuditRequest): Promise<boolean> {
    return this.#db.write(() => deleteSecretTx(this.#db, name, audit));
  }

  async listGrants(filter: { agentIds?: readonly string[] } = {}): Promise<GrantDetail[]> {
    return this.#db.read(() => {
      const params: Params = {};
      const where =
        filter.agentIds === undefined
          ? ""
          : `WHERE g.agent_id IN (${placeholders("a", filter.agentIds, params)})`;
      return (
        this.#db
          .q(`${GRANT_DETAIL} ${where} ORDER BY a.name, s.name`)
          .all(params) as GrantDetailRow[]
      ).map(toGrantDetail);
    });
  }

  async listActiveGrantsForAgent(agentId: string, now: number): Promise<GrantDetail[]> {
    return this.#activeGrants("g.agent_id = @id", "s.name", agentId, now);
  }

  async listActiveGrantsForSecret(secretId: string, now: number): Promise<GrantDetail[]> {
    return this.#activeGrants("g.secret_id = @id", "a.name", secretId, now);
  }

  async addGrant(
    grant: NewLimitedGrant,
    now: number,
    audit: AuditRequest,
  ): Promise<GrantDetail | null> {
    return this.#db.write(() => addGrantTx(this.#db, grant, now, audit));
  }

  async removeGrant(agentId: string, secretId: string, audit: AuditRequest): Promise<boolean> {
    return this.#db.write(() => removeGrantTx(this.#db, agentId, secretId, audit));
  }

  async appendAudit(draft: AuditDraft): Promise<AuditRecord> {
    return this.#db.write(() => this.#db.appendDraft(draft));
  }

  async listAudit(filter: AuditFilter): Promise<AuditRecord[]> {
    return this.#db.read(() => {
      const params: Params = { after: filter.after ?? 0, limit: filter.limit };
      const where = ["seq > @after"];
      if (filter.agentIds !== undefined) {
        where.push(`agent_id IN (${placeholders("a", filter.agentIds, params)})`);
      }
      if (filter.secretIds !== undefined) {
        where.push(`secret_id IN (${placeholders("s", filter.secretIds, params)})`);
      }
      if (filter.since !== undefined) {
        where.push("ts >= @since");
        params.since = filter.since;
      }
      const sql = `SELECT * FROM audit WHERE ${where.join(" AND ")} ORDER BY seq LIMIT @limit`;
      return (this.#db.q(sql).all(params) as AuditRow[]).map(toAudit);
    });
  }

  async auditHead(): Promise<AuditHead> {
    return this.#db.read(() => {
      const last = this.#db.lastAudit();
      return last ? { size: last.seq, head: bytes(last.hash) } : { size: 0, head: AUDIT_GENESIS };
    });
  }

  writeStats(): WriteStats {
    return this.#db.writeStats();
  }

  async close(): Promise<void> {
    // Writes already queued are committed (and answered) first: nothing acknowledged is lost.
    // A later one (a handler outliving shutdown) is refused, so no sync runs after this wait.
    this.#db.stopWrites();
    await this.#db.writesDone();
    this.#db.close();
  }

  #readVault(): VaultRecord | null {
    const row = this.#db.q("SELECT * FROM vault WHERE singleton = 1").get() as VaultRow | undefined;
    return nullable(row, toVault);
  }

  async #activeGrants(
    condition: string,
    order: string,
    id: string,
    now: number,
  ): Promise<GrantDetail[]> {
    const sql = `${GRANT_DETAIL} WHERE ${condition} AND ${ACTIVE_GRANT} ORDER BY ${order}`;
    return this.#db.read(() =>
      (this.#db.q(sql).all({ id, now }) as GrantDetailRow[]).map(toGrantDetail),
    );
  }
}
