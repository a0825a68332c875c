/**
 * The SQLite connection under the store: pragmas, migrations, a prepared-statement cache, the
 * one transaction helper, the audit chain append, and the row lookups the operations share.
 */
import { closeSync, openSync } from "node:fs";
import { AUDIT_GENESIS, type AuditFields, chainAuditHash, KeyholeError } from "@keyhole/core";
import Database from "better-sqlite3";
import { sha256Sync } from "../audit/sha256.js";
import { type AuditOutcome, auditDraft } from "./audit-draft.js";
import { DurabilityGate } from "./durability-gate.js";
import { GroupCommit } from "./group-commit.js";
import { SQLITE_MIGRATIONS } from "./migrations/sqlite/index.js";
import type { SqliteStoreOptions } from "./sqlite.js";
import {
  ACTIVE_GRANT,
  AGENT_SUMMARY,
  type AgentRow,
  blob,
  bytes,
  type GrantKept,
  type GrantRow,
  type SecretRow,
  toAgentSummary,
  translateError,
  type VersionRow,
} from "./sqlite-rows.js";
import { storageError } from "./storage-errors.js";
import type {
  AgentPrincipal,
  AgentSummary,
  AuditDraft,
  AuditRecord,
  AuditRequest,
  NewGrant,
  NewToken,
} from "./store.js";
import { WalSync } from "./wal-sync.js";

/** One open database file. */
export class SqliteDb {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #beforeAuditAppend: ((entry: AuditFields) => void) | undefined;
  readonly #writer: GroupCommit;
  readonly #gate: DurabilityGate;
  readonly #wal: WalSync;
  /**
   * What the open write transaction has written so far, kept to spare a statement per audited
   * operation: the chain head it appended last, and the `last_used_at` it stamped per agent.
   * Forgotten at every BEGIN and rollback (GroupCommit's onTransactionReset), so it never
   * outlives the rows it describes; only this connection writes (data-lock.ts).
   */
  #txChainHead: { seq: number; hash: Uint8Array } | undefined;
  readonly #txLastUsed = new Map<string, number>();

  /** `hooks`: test-only fault injection (SqliteStoreOptions says what each does). */
  constructor(
    path: string,
    hooks: Pick<SqliteStoreOptions, "beforeAuditAppend" | "pragmaHook" | "syncHook"> = {},
  ) {
    const { beforeAuditAppend, pragmaHook, syncHook } = hooks;
    // Create the file ourselves so it is 0600 from the start; SQLite gives -wal and -shm the
    // mode of the database file.
    closeSync(openSync(path, "a", 0o600));
    this.#db = new Database(path);
    this.#beforeAuditAppend = beforeAuditAppend;
    const translate = (error: unknown) => storageError(error) ?? translateError(error);
    this.#wal = new WalSync(path);
    const sync = () => this.#wal.sync();
    this.#gate = new DurabilityGate(syncHook ? () => syncHook(sync) : sync, translate);
    this.#writer = new GroupCommit(this.#db, this.#gate, translate, {
      onTransactionReset: () => {
        this.#txChainHead = undefined;
        this.#txLastUsed.clear();
      },
    });
    try {
      // Everything below (the fsync of the WAL file, the durability gate) assumes WAL mode.
      if (this.#db.pragma("journal_mode = WAL", { simple: true }) !== "wal") {
        throw new KeyholeError("config_error", "the database cannot use a write-ahead log");
      }
      // NORMAL: a COMMIT does not fsync the WAL itself; the durability gate does, off the event
      // loop, and holds every answer until the commit it depends on is on disk. Together that is
      // FULL's promise (an acknowledged write survives kill -9 and power loss) without stopping
      // the server for each fsync (durability-gate.ts).
      this.#db.pragma("synchronous = NORMAL");
      this.#db.pragma("foreign_keys = ON");
      // Deleted rows (a revoked agent's wraps, a deleted secret) are zeroed in the file, not
      // left behind in free pages.
      this.#db.pragma("secure_delete = ON");
      this.#db.pragma("busy_timeout = 5000");
      this.#migrate();
      this.#checkpointAtStart();
      // Test-only: fault injection on this very connection (max_page_count, query_only).
      pragmaHook?.((pragma) => this.#db.pragma(pragma));
    } catch (error) {
      this.#db.close();
      throw error;
    }
  }

  get open(): boolean {
    return this.#db.open;
  }

  /** Refuses every later write (shutdown); queued ones still run. */
  stopWrites(): void {
    this.#writer.close();
  }

  /** Closes the connection. Only after `writesDone()`: a sync may still be running before it. */
  close(): void {
    if (this.#db.open) this.#db.close();
    this.#wal.close();
  }

  /** A cached prepared statement. */
  q(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * Runs a read, translating storage errors (a full or read-only disk: storage-errors.ts). Its
   * result is held back until every commit it could have seen is on disk (durability-gate.ts).
   */
  read<T>(fn: () => T): T | Promise<T> {
    let value: T;
    try {
      value = fn();
    } catch (error) {
      throw storageError(error) ?? translateError(error);
    }
    return this.#gate.afterDurable(value);
  }

  /**
   * Runs a read whose result decides what the server does but is never sent as it is (the token
   * lookup of authentication), without waiting for the commits it could see to be synced. A
   * request it admits is answered with data only after a write of its own (whose sync covers
   * every earlier commit) or a `read`. What it can reveal early is only whether a token works in
   * a commit not yet on disk, by refusing it (a 401 for a revoke that a power cut could undo):
   * it fails closed.
   */
  readUnsynced<T>(fn: () => T): T {
    this.#gate.check();
    try {
      return fn();
    } catch (error) {
      throw storageError(error) ?? translateError(error);
    }
  }

  /**
   * Runs `fn` as one atomic write: all of it commits, or none of it. It shares its
   * `BEGIN IMMEDIATE` transaction (and its fsync) with the other writes of this event-loop turn,
   * each in a savepoint of its own, and resolves only after the commit (group-commit.ts).
   */
  write<T>(fn: () => T): Promise<T> {
    return this.#writer.run(fn);
  }

  /** Write operations, commits and fsyncs so far. */
  writeStats(): { operations: number; commits: number; syncs: number } {
    return this.#writer.stats;
  }

  /** Resolves once every write queued so far has committed or failed. */
  writesDone(): Promise<void> {
    return this.#writer.drained();
  }

  /** Appends an operation's entry: the request's part plus what the operation decided. */
  append(request: AuditRequest, outcome: AuditOutcome): AuditRecord {
    return this.appendDraft(auditDraft(request, outcome));
  }

  /**
   * Reads the chain head, hashes the entry onto it and inserts it. Called inside the
   * operation's transaction, so the head cannot move underneath and a failure rolls back all.
   * Stamps the acting agent's `last_used_at`, once per agent and transaction unless time moved.
   */
  appendDraft(draft: AuditDraft): AuditRecord {
    const last = this.#chainHead();
    const fields: AuditFields = { seq: (last?.seq ?? 0) + 1, ...draft };
    this.#beforeAuditAppend?.(fields);
    const hash = chainAuditHash(last ? last.hash : AUDIT_GENESIS, fields, sha256Sync);
    this.q(
      `INSERT INTO audit (seq, ts, request_id, actor_type, actor_id, action, result, agent_id,
         secret_id, secret_version, client_ip, user_agent, detail, hash)
       VALUES (@seq, @ts, @requestId, @actorType, @actorId, @action, @result, @agentId,
         @secretId, @secretVersion, @clientIp, @userAgent, @detail, @hash)`,
    ).run({ ...fields, hash: blob(hash) });
    this.#txChainHead = { seq: fields.seq, hash };
    if (fields.actorType === "agent" && fields.actorId !== "") {
      this.#stampLastUsed(fields.actorId, fields.ts);
    }
    return { ...fields, hash };
  }

  /** The head the next entry chains onto: remembered within a transaction, else read. */
  #chainHead(): { seq: number; hash: Uint8Array } | undefined {
    if (this.#txChainHead !== undefined && this.#db.inTransaction) return this.#txChainHead;
    const last = this.lastAudit();
    return last ? { seq: last.seq, hash: bytes(last.hash) } : undefined;
  }

  /** Stamps an agent's `last_used_at`, unless this transaction already stamped it as late. */
  #stampLastUsed(agentId: string, ts: number): void {
    const stamped = this.#txLastUsed.get(agentId);
    if (stamped !== undefined && stamped >= ts && this.#db.inTransaction) return;
    this.q("UPDATE agents SET last_used_at = @ts WHERE id = @id").run({ ts, id: agentId });
    this.#txLastUsed.set(agentId, ts);
  }

  lastAudit(): { seq: number; hash: Buffer } | undefined {
    return this.q("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as
      | { seq: number; hash: Buffer }
      | undefined;
  }

  agentRow(id: string): AgentRow | undefined {
    return this.q("SELECT * FROM agents WHERE id = @id").get({ id }) as AgentRow | undefined;
  }

  agentSummary(id: string, now: number): AgentSummary | null {
    const row = this.q(`${AGENT_SUMMARY} WHERE a.id = @id`).get({ id, now }) as
      | (AgentRow & { grant_count: number })
      | undefined;
    return row ? toAgentSummary(row) : null;
  }

  secretByName(name: string): SecretRow | undefined {
    return this.q("SELECT * FROM secrets WHERE name = @name").get({ name }) as
      | SecretRow
      | undefined;
  }

  secretById(id: string): SecretRow | undefined {
    return this.q("SELECT * FROM secrets WHERE id = @id").get({ id }) as SecretRow | undefined;
  }

  versionRow(secretId: string, version: number): VersionRow | undefined {
    return this.q(
      "SELECT * FROM secret_versions WHERE secret_id = @secretId AND version = @version",
    ).get({ secretId, version }) as VersionRow | undefined;
  }

  /** Active grants matching `condition` (over `g`, binding `@id`), with the agent's key. */
  activeGrantRows(condition: string, id: string, now: number): (GrantRow & { enc_pk: Buffer })[] {
    return this.q(
      `SELECT g.*, a.enc_pk FROM grants g JOIN agents a ON a.id = g.agent_id
       WHERE ${condition} AND ${ACTIVE_GRANT}`,
    ).all({ id, now }) as (GrantRow & { enc_pk: Buffer })[];
  }

  insertToken(agentId: string, token: NewToken, now: number): void {
    const t = blob(token.tokenId);
    // A retired token id stays dead: reusing it would make an agent that can never authenticate.
    if (
      this.q("SELECT 1 FROM agent_tokens WHERE token_id = @t").get({ t }) ||
      this.q("SELECT 1 FROM retired_tokens WHERE token_id = @t").get({ t })
    ) {
      throw new KeyholeError("conflict", "the token id is taken");
    }
    this.q(
      `INSERT INTO agent_tokens (token_id, agent_id, verifier, pepper_kid, created_at)
       VALUES (@tokenId, @agentId, @verifier, @kid, @now)`,
    ).run({
      tokenId: blob(token.tokenId),
      agentId,
      verifier: blob(token.verifier),
      kid: token.pepperKid,
      now,
    });
  }

  /**
   * Deletes the agent's token and records its id in `retired_tokens`, in the caller's
   * transaction, so the id outlives the row (the server copies it outside the database).
   */
  retireTokens(agentId: string, reason: "revoke" | "rotate", now: number): Uint8Array[] {
    const rows = this.q("SELECT token_id FROM agent_tokens WHERE agent_id = @agentId").all({
      agentId,
    }) as { token_id: Buffer }[];
    for (const row of rows) {
      this.q(
        `INSERT INTO retired_tokens (token_id, agent_id, reason, retired_at)
         VALUES (@tokenId, @agentId, @reason, @now)`,
      ).run({ tokenId: row.token_id, agentId, reason, now });
    }
    this.q("DELETE FROM agent_tokens WHERE agent_id = @agentId").run({ agentId });
    return rows.map((row) => bytes(row.token_id));
  }

  /**
   * Inserts a grant after checking that it names the secret's current version. `kept` carries
   * what a re-wrap keeps from the grant it replaces: when it was first made, its read budget and
   * the reads already spent.
   */
  insertGrant(grant: NewGrant, kept: GrantKept): void {
    const secret = this.secretById(grant.secretId);
    if (!secret || secret.current_version !== grant.version) {
      throw new KeyholeError("conflict", "the secret changed");
    }
    this.q(
      `INSERT INTO grants (agent_id, secret_id, version, wrap, issued_at, not_after,
         allowed_hosts, sig, created_at, max_uses, uses)
       VALUES (@agentId, @secretId, @version, @wrap, @issuedAt, @notAfter, @hosts, @sig,
         @createdAt, @maxUses, @uses)`,
    ).run({
      agentId: grant.agentId,
      secretId: grant.secretId,
      version: grant.version,
      wrap: blob(grant.wrap),
      issuedAt: grant.issuedAt,
      notAfter: grant.notAfter,
      hosts: JSON.stringify(grant.allowedHosts),
      sig: blob(grant.sig),
      createdAt: kept.createdAt,
      maxUses: kept.maxUses,
      uses: kept.uses,
    });
  }

  /**
   * Checks inside the transaction that the agent's token still authenticates, so a fetch racing
   * a revoke or rotate either commits before it or fails (SECURITY-TESTS #15). Returns the
   * agent's id. Reads only the columns it checks: it runs on every agent request.
   */
  checkPrincipal(principal: AgentPrincipal, now: number): string {
    const row = this.q(
      `SELECT a.revoked_at, a.expires_at FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
       WHERE t.token_id = @tokenId AND t.agent_id = @agentId`,
    ).get({ tokenId: blob(principal.tokenId), agentId: principal.agentId }) as
      | Pick<AgentRow, "revoked_at" | "expires_at">
      | undefined;
    if (!row || row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= now)) {
      throw new KeyholeError("unauthenticated");
    }
    return principal.agentId;
  }

  /**
   * Copies the WAL into the database file and fsyncs it, before anything is served. Commits a
   * killed predecessor published, and the migrations just run, are then on disk; so are WAL
   * pages whose fsync failed before a restart (after an fsync error Linux keeps them in the page
   * cache marked clean, and a later fsync of the WAL would not write them again: a checkpoint
   * writes them to the database file anew). Best effort when another connection (an online
   * backup) holds back part of the WAL.
   */
  #checkpointAtStart(): void {
    this.#db.pragma("wal_checkpoint(TRUNCATE)");
  }

  #migrate(): void {
    this.#db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    const applied = new Set(
      (
        this.#db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]
      ).map((r) => r.version),
    );
    const known = new Set(SQLITE_MIGRATIONS.map((m) => m.version));
    for (const version of applied) {
      if (!known.has(version)) {
        throw new KeyholeError(
          "config_error",
          "the database was written by a newer Keyhole server",
        );
      }
    }
    for (const migration of SQLITE_MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      this.#db.transaction(() => {
        this.#db.exec(migration.sql);
        this.#db
          .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
          .run(migration.version, migration.name, Date.now());
      })();
    }
  }
}
