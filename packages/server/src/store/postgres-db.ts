/**
 * The PostgreSQL connection pool under the store: connection settings, migrations under an
 * advisory lock, the one transaction helper, and the audit chain append that several servers
 * share.
 *
 * How concurrent servers stay correct (docs/scaling.md):
 * - Owner writes take one transaction-scoped advisory lock first, so they run one at a time
 *   across every server, exactly as under SQLite's single writer: their check-then-write logic
 *   (version compare-and-set, "the grants cover every active grantee") needs no other change.
 * - Agent operations lock their token row (`FOR KEY SHARE`): a revoke or rotate, which deletes
 *   that row, waits for a fetch in flight to commit, and a fetch that starts after it finds no
 *   token. A fetch never answers after the revoke that should have stopped it committed.
 * - Every audited transaction appends its entry last, under the row lock of `audit_head`: appends
 *   from all servers are serialised into one gap-free chain. Nothing else is locked after that
 *   lock, so it cannot take part in a deadlock.
 */
import { AUDIT_GENESIS, type AuditFields, chainAuditHash, KeyholeError } from "@keyhole/core";
import postgres from "postgres";
import { sha256Sync } from "../audit/sha256.js";
import { type AuditOutcome, auditDraft } from "./audit-draft.js";
import { POSTGRES_MIGRATIONS } from "./migrations/postgres/index.js";
import { commitOutcomeUnknown, isConnectionError, pgStorageError } from "./postgres-errors.js";
import {
  ConnectionLost,
  Pool,
  type ReservedSql,
  reconnectBackoff,
  type Sql,
  TxConnection,
  transaction,
} from "./postgres-pool.js";
import type { AuditDraft, AuditRecord, AuditRequest } from "./store.js";

export type { ReservedSql, Sql } from "./postgres-pool.js";

/** How to open the PostgreSQL store. */
export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` (credentials are never logged). */
  readonly url: string;
  /**
   * The schema Keyhole's tables live in (default: the role's default, normally `public`); one
   * database can then hold several vaults, and each test its own.
   */
  readonly schema?: string;
  /** Connections in the pool (default 10). */
  readonly maxConnections?: number;
  /** Test-only fault injection, as in SQLite: throwing fails the whole operation. */
  readonly beforeAuditAppend?: (entry: AuditFields) => void;
}

/** Keyhole's advisory locks: (this space, one of the keys below), in PostgreSQL's two-int form. */
const LOCK_SPACE = 0x4b65_7968; // "Keyh"
/** Owner writes serialise on this one. */
const OWNER_WRITE_LOCK = 1;
/** Migrations run under this one. */
const MIGRATION_LOCK = 2;

/** Whether a transaction runs owner writes (serialised) or not. */
export type WriteKind = "owner" | "agent";

/**
 * BIGINT columns (times, `seq`, `COUNT(*)`) come back as numbers: every value we store fits in
 * 2^53, and one that does not is refused rather than rounded.
 */
const int8AsNumber = {
  to: 20,
  from: [20],
  serialize: (value: number) => String(value),
  parse: (text: string) => {
    const value = Number(text);
    if (!Number.isSafeInteger(value)) throw new RangeError("a BIGINT beyond 2^53 in the database");
    return value;
  },
};

/** One operation's transaction: its connection and the audit entry it will append last. */
export class PgTx {
  readonly sql: ReservedSql;
  readonly drafts: AuditDraft[] = [];

  constructor(sql: ReservedSql) {
    this.sql = sql;
  }

  /** Records the operation's entry; it is chained and inserted when the operation is done. */
  append(request: AuditRequest, outcome: AuditOutcome): void {
    this.drafts.push(auditDraft(request, outcome));
  }

  /** Records a complete entry (failed authentication, appended on its own). */
  appendDraft(draft: AuditDraft): void {
    this.drafts.push(draft);
  }
}

/** The pool, migrated. */
export class PgDb {
  /**
   * The pool (postgres-pool.ts): replaced after a connection failure, refusing statements at
   * once while the database is believed down (its users map that like any connection
   * failure: a 503).
   */
  readonly sql: Sql;
  readonly #pool: Pool;
  readonly #beforeAuditAppend: ((entry: AuditFields) => void) | undefined;
  #closed = false;

  private constructor(pool: Pool, options: PostgresStoreOptions) {
    this.#pool = pool;
    this.sql = pool.sql;
    this.#beforeAuditAppend = options.beforeAuditAppend;
  }

  /** Connects and applies pending migrations. */
  static async open(options: PostgresStoreOptions): Promise<PgDb> {
    const pool = new Pool(
      () =>
        postgres(options.url, {
          max: options.maxConnections ?? 10,
          idle_timeout: 60,
          connect_timeout: 5,
          backoff: reconnectBackoff,
          // NOTICEs would go to the console by default; nothing we run raises one worth reading.
          onnotice: () => {},
          types: { int8: int8AsNumber },
          connection: {
            application_name: "keyhole-server",
            ...(options.schema === undefined ? {} : { search_path: options.schema }),
            // A lock or a statement stuck this long is answered 503 rather than held forever; a
            // server that dies inside a transaction has its locks freed with its connection.
            lock_timeout: 10_000,
            statement_timeout: 20_000,
            idle_in_transaction_session_timeout: 30_000,
          },
        }) as unknown as Sql,
    );
    const db = new PgDb(pool, options);
    try {
      await db.#migrate();
    } catch (error) {
      await pool.end().catch(() => {});
      throw pgStorageError(error) ?? error;
    }
    pool.watch();
    return db;
  }

  /** Runs a read on any pooled connection. */
  async read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const generation = this.#pool.generation;
    try {
      return await fn(this.sql);
    } catch (error) {
      this.#pool.failed(error, generation);
      throw pgStorageError(error) ?? error;
    }
  }

  /**
   * Runs `fn` in one transaction on a reserved connection, appends the audit entries it
   * recorded, and commits: all of it, or none of it. Resolves with its result and the appended
   * entries only after the COMMIT (synchronous_commit: on disk before the answer leaves).
   */
  async write<T>(
    kind: WriteKind,
    fn: (tx: PgTx) => Promise<T>,
  ): Promise<{ value: T; records: AuditRecord[] }> {
    if (this.#closed) throw new KeyholeError("unavailable", "the store is closing");
    // Connection failures reach the pool through `TxConnection` (postgres-pool.ts).
    let conn: TxConnection;
    try {
      conn = await TxConnection.begin(this.sql);
    } catch (error) {
      throw pgStorageError(error) ?? error;
    }
    try {
      if (kind === "owner")
        await conn.sql`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${OWNER_WRITE_LOCK})`;
      const tx = new PgTx(conn.sql);
      const value = await fn(tx);
      const records = await this.#appendChained(conn.sql, tx.drafts);
      await this.#commit(conn);
      return { value, records };
    } catch (error) {
      await conn.rollback(error);
      throw pgStorageError(error) ?? error;
    } finally {
      conn.release();
    }
  }

  /** Refuses later writes and closes the pool once the queries in flight are done. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.end();
  }

  async #commit(conn: TxConnection): Promise<void> {
    try {
      await conn.commit();
    } catch (error) {
      // A PostgreSQL error means the COMMIT was refused (rolled back), and so does a COMMIT
      // never sent because the connection had closed (PostgreSQL rolls back a transaction
      // whose connection dies); a connection that broke while it ran means nobody knows.
      if (isConnectionError(error) && !(error instanceof ConnectionLost)) {
        throw commitOutcomeUnknown(error);
      }
      throw error;
    }
  }

  /**
   * Chains `drafts` onto the head under its row lock and inserts them. The lock is held until
   * the COMMIT, so the next append (from any server) chains onto these.
   */
  async #appendChained(conn: ReservedSql, drafts: readonly AuditDraft[]): Promise<AuditRecord[]> {
    if (drafts.length === 0) return [];
    const [head] = await conn<{ seq: number; hash: Buffer }[]>`
      SELECT seq, hash FROM audit_head WHERE singleton = 1 FOR UPDATE`;
    if (head === undefined) throw new Error("the audit head row is missing");
    let seq = head.seq;
    let hash: Uint8Array = seq === 0 ? AUDIT_GENESIS : new Uint8Array(head.hash);
    const records: AuditRecord[] = [];
    for (const draft of drafts) {
      seq += 1;
      const fields: AuditFields = { seq, ...draft };
      this.#beforeAuditAppend?.(fields);
      hash = chainAuditHash(hash, fields, sha256Sync);
      records.push({ ...fields, hash });
    }
    const rows = records.map((r) => ({
      seq: r.seq,
      ts: r.ts,
      request_id: r.requestId,
      actor_type: r.actorType,
      actor_id: r.actorId,
      action: r.action,
      result: r.result,
      agent_id: r.agentId,
      secret_id: r.secretId,
      secret_version: r.secretVersion,
      client_ip: r.clientIp,
      user_agent: r.userAgent,
      detail: r.detail,
      hash: Buffer.from(r.hash),
    }));
    await conn`
      WITH appended AS (INSERT INTO audit ${conn(rows)})
      UPDATE audit_head SET seq = ${seq}, hash = ${Buffer.from(hash)} WHERE singleton = 1`;
    return records;
  }

  /**
   * Applies pending migrations in one transaction under an advisory lock: the first server to
   * start applies them, the others wait and then find nothing to do. A database migrated by a
   * newer server is refused.
   */
  async #migrate(): Promise<void> {
    await transaction(this.sql, async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${MIGRATION_LOCK})`;
      await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`;
      const rows = await tx<{ version: number }[]>`SELECT version FROM schema_migrations`;
      const applied = new Set(rows.map((r) => r.version));
      const known = new Set(POSTGRES_MIGRATIONS.map((m) => m.version));
      if ([...applied].some((version) => !known.has(version))) {
        throw new KeyholeError(
          "config_error",
          "the database was written by a newer Keyhole server",
        );
      }
      for (const migration of POSTGRES_MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        await tx.unsafe(migration.sql);
        await tx`INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES (${migration.version}, ${migration.name}, ${Date.now()})`;
      }
    });
  }
}
