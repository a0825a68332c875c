/**
 * The PostgreSQL connection pool under the store: connection settings, migrations under an
 * advisory lock, the one transaction helper, and the audit chain append that several servers
 * share.
 *
 * How concurrent servers stay correct (docs/scaling.md):
 * - Owner writes take one transaction-scoped advisory lock first, so they run one at a time
 *   across every server, exactly as under SQLite's single writer: their check-then-write logic
 *   (version compare-and-set, "the grants cover every active grantee") needs no other change.
 * - Every operation takes the advisory locks of the agent and secret it works on before it
 *   reads (postgres-locks.ts): a revoke waits for the agent's fetches in flight, and a fetch
 *   that starts after it finds no token. A fetch never answers after the revoke that should
 *   have stopped it committed.
 * - Every audited transaction appends its entries last, under the row lock of `audit_head`, in
 *   the database (migration 003, `keyhole_audit_append`): appends from all servers are
 *   serialised into one gap-free chain. Nothing else is locked after that lock, so it cannot
 *   take part in a deadlock.
 *
 * Round trips are what a fetch costs here (each one a socket write and read on both sides), so
 * a transaction takes as few as it can: BEGIN goes out with the operation's locks, and the
 * audit append with the COMMIT; a fetch is three, its one read in the middle.
 */
import { encodeAuditEntry, KeyholeError } from "@keyhole/core";
import postgres from "postgres";
import { driverTarget } from "../database-url.js";
import { type AuditOutcome, auditDraft } from "./audit-draft.js";
import { POSTGRES_MIGRATIONS } from "./migrations/postgres/index.js";
import { Batcher } from "./postgres-batch.js";
import {
  commitOutcomeUnknown,
  isCommitOutcomeUnknown,
  isConnectionError,
  isContentionError,
  pgStorageError,
} from "./postgres-errors.js";
import {
  type AdvisoryLock,
  compareKeys,
  type KeyedLock,
  keyedLocks,
  lockStatement,
  MIGRATION_LOCK_STATEMENT,
} from "./postgres-locks.js";
import {
  ConnectionLost,
  Pool,
  type ReservedSql,
  reconnectBackoff,
  type Sql,
  TxConnection,
  transaction,
} from "./postgres-pool.js";
import type { AuditDraft, AuditRecord, AuditRequest, WriteStats } from "./store.js";

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
  readonly beforeAuditAppend?: (draft: AuditDraft) => void;
  /** How long a read or a transaction may go unanswered before it is given up (default 60 s). */
  readonly stallLimitMs?: number;
}

/**
 * How long a read or a transaction may go without an answer: well past every limit PostgreSQL
 * enforces itself (lock 10 s, statement 20 s, idle in transaction 30 s), so only a connection
 * the driver lost track of gets here (it has left statements unsettled forever,
 * postgres-pool.ts). Giving up frees the request, and a batch's place, and replaces the pool.
 */
const STALL_LIMIT_MS = 60_000;

/** Work given up after `stallLimitMs`: a connection failure (postgres-errors.ts). */
class Stalled extends Error {
  readonly code = "STALLED";
}

/** Connections in the pool unless told otherwise. */
const DEFAULT_CONNECTIONS = 10;
/** Agent operations in one transaction at most (postgres-batch.ts). */
const BATCH_OPERATIONS = 32;

/** An agent operation waiting for its batch, and how to answer it. */
interface AgentOp {
  readonly fn: (tx: PgTx) => Promise<unknown>;
  /** Its locks, in its own order (agent, then secret): a batch runs in their keys' order. */
  readonly locks: readonly KeyedLock[];
  readonly resolve: (result: { value: unknown; records: AuditRecord[] }) => void;
  readonly reject: (error: unknown) => void;
}

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
  readonly #schema: string;
  readonly #batched: boolean;

  constructor(sql: ReservedSql, schema: string, batched: boolean) {
    this.sql = sql;
    this.#schema = schema;
    this.#batched = batched;
  }

  /**
   * Takes an advisory lock now, for an operation that learns what to lock from a read (the
   * others pass their locks to `PgDb.write`, sent with BEGIN). Never in a batch: its locks are
   * all taken at once, in key order, which a later lock would break (postgres-locks.ts).
   */
  async lock(lock: AdvisoryLock): Promise<void> {
    if (this.#batched) throw new Error("an operation in a batch takes its locks with BEGIN");
    const statement = lockStatement(false, keyedLocks(this.#schema, [lock]));
    if (statement !== null) await this.sql.unsafe(statement);
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
  readonly #beforeAuditAppend: ((draft: AuditDraft) => void) | undefined;
  readonly #stallLimitMs: number;
  readonly #batcher: Batcher<AgentOp>;
  /** Operations committed, and the transactions that committed them (batches count once). */
  #operations = 0;
  #commits = 0;
  /** The schema the tables are in, as the database named it: part of every lock key. */
  #schema = "";
  #closed = false;

  private constructor(pool: Pool, options: PostgresStoreOptions) {
    this.#pool = pool;
    this.sql = pool.sql;
    this.#beforeAuditAppend = options.beforeAuditAppend;
    this.#stallLimitMs = options.stallLimitMs ?? STALL_LIMIT_MS;
    const connections = options.maxConnections ?? DEFAULT_CONNECTIONS;
    this.#batcher = new Batcher<AgentOp>(
      // A quarter of the pool for batches, the rest for reads (token lookups) and owner
      // writes: fewer batches in flight make larger ones, fewer commits for the serial append
      // (docs/performance.md, measured against half the pool).
      { batches: Math.max(1, Math.floor(connections / 4)), operations: BATCH_OPERATIONS },
      (ops) => this.#writeTogether(ops),
    );
  }

  /** What `/metrics` shows: more operations than commits is batching at work. */
  writeStats(): WriteStats {
    return { operations: this.#operations, commits: this.#commits, syncs: null };
  }

  /** Connects and applies pending migrations. */
  static async open(options: PostgresStoreOptions): Promise<PgDb> {
    // Checked, and taken apart here: the driver never sees the URL (database-url.ts).
    const target = driverTarget(options.url);
    // The driver takes `host` and `port` as lists too (its multi-host form; ours has one
    // entry), though its types say otherwise: the list keeps it from splitting an IPv6 address
    // on its colons.
    const where = target as unknown as { host: string; port: number };
    const pool = new Pool(
      () =>
        postgres({
          ...target,
          ...where,
          // Set, so that no PG* environment variable the driver reads changes them.
          debug: false,
          prepare: true,
          fetch_types: true,
          keep_alive: 60,
          max: options.maxConnections ?? DEFAULT_CONNECTIONS,
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
            // Every COMMIT is on disk before its answer leaves, whatever the role's default.
            synchronous_commit: "on",
          },
        }) as unknown as Sql,
    );
    const db = new PgDb(pool, options);
    try {
      await db.#migrate();
      db.#schema = await db.#currentSchema();
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
      return await this.#bounded(fn(this.sql), generation);
    } catch (error) {
      this.#pool.failed(error, generation);
      throw pgStorageError(error) ?? error;
    }
  }

  /**
   * Runs `fn` in one transaction on a reserved connection, appends the audit entries it
   * recorded, and commits: all of it, or none of it. Resolves with its result and the appended
   * entries only after the COMMIT (synchronous_commit: on disk before the answer leaves).
   * `locks` are taken with BEGIN, in one round trip (an owner write's own lock first); an
   * operation that learns what to lock from a read takes it with `PgTx.lock`. Agent
   * operations share their transaction with the others that arrive with them
   * (postgres-batch.ts); `fn` may then run twice, the first run rolled back.
   */
  async write<T>(
    kind: WriteKind,
    fn: (tx: PgTx) => Promise<T>,
    locks: readonly AdvisoryLock[] = [],
  ): Promise<{ value: T; records: AuditRecord[] }> {
    if (this.#closed) throw new KeyholeError("unavailable", "the store is closing");
    const keyed = keyedLocks(this.#schema, locks);
    if (kind === "owner") return this.#writeAlone(kind, fn, keyed);
    return new Promise((resolve, reject) => {
      this.#batcher.add({ fn, locks: keyed, resolve, reject } as AgentOp);
    });
  }

  async #writeAlone<T>(
    kind: WriteKind,
    fn: (tx: PgTx) => Promise<T>,
    locks: readonly KeyedLock[],
  ): Promise<{ value: T; records: AuditRecord[] }> {
    const generation = this.#pool.generation;
    try {
      return await this.#bounded(this.#transact(kind, fn, locks), generation);
    } catch (error) {
      // Given up without knowing how far it got: perhaps committed.
      throw error instanceof Stalled ? commitOutcomeUnknown(error) : error;
    }
  }

  async #transact<T>(
    kind: WriteKind,
    fn: (tx: PgTx) => Promise<T>,
    locks: readonly KeyedLock[],
  ): Promise<{ value: T; records: AuditRecord[] }> {
    // Connection failures reach the pool through `TxConnection` (postgres-pool.ts).
    let conn: TxConnection;
    try {
      conn = await TxConnection.begin(this.sql, lockStatement(kind === "owner", locks));
    } catch (error) {
      throw pgStorageError(error) ?? error;
    }
    try {
      const tx = new PgTx(conn.sql, this.#schema, false);
      const value = await fn(tx);
      const records = await this.#appendAndCommit(conn, tx.drafts);
      this.#operations += 1;
      this.#commits += 1;
      return { value, records };
    } catch (error) {
      await conn.rollback(error);
      throw pgStorageError(error) ?? error;
    } finally {
      conn.release();
    }
  }

  /**
   * Runs agent operations that arrived together in one transaction: every one's locks with
   * BEGIN, each operation in turn (in lock-key order), all their entries appended with the
   * COMMIT. Settles each. When one throws, or PostgreSQL refuses one's statement, nothing was
   * committed: the batch is rolled back and each operation runs again alone, so each gets its
   * own answer. A broken connection, an unknown commit outcome or a busy database (timeouts,
   * deadlock) fails them all with that 503, as it would each alone.
   */
  async #writeTogether(arrived: readonly AgentOp[]): Promise<void> {
    const generation = this.#pool.generation;
    const batch = { abandoned: false };
    await this.#bounded(this.#transactTogether(arrived, batch), generation).catch(
      (error: unknown) => {
        // Only `Stalled` gets here: the batch is given up without knowing how far it got, and
        // must not run its operations again later (their callers were told "unknown").
        batch.abandoned = true;
        const unknown = commitOutcomeUnknown(error);
        for (const op of arrived) op.reject(unknown);
      },
    );
  }

  async #transactTogether(
    arrived: readonly AgentOp[],
    batch: { readonly abandoned: boolean },
  ): Promise<void> {
    if (arrived.length === 1) {
      const [op] = arrived as [AgentOp];
      await this.#writeAlone("agent", op.fn, op.locks).then(op.resolve, op.reject);
      return;
    }
    // In the order of their lock keys, not of arrival: a fetch of a limited grant locks the
    // grant's row (its use count) to the end of the batch, so two batches that met the same
    // two grants in opposite orders would deadlock. In one order, they wait in turn.
    const ops = [...arrived].sort((a, b) => compareKeys(a.locks, b.locks));
    let conn: TxConnection;
    try {
      conn = await TxConnection.begin(
        this.sql,
        lockStatement(
          false,
          ops.flatMap((op) => op.locks),
        ),
      );
    } catch (error) {
      const mapped = pgStorageError(error) ?? error;
      for (const op of ops) op.reject(mapped);
      return;
    }
    let results: { value: unknown; records: AuditRecord[] }[];
    try {
      const txs: PgTx[] = [];
      const values: unknown[] = [];
      for (const op of ops) {
        const tx = new PgTx(conn.sql, this.#schema, true);
        values.push(await op.fn(tx));
        txs.push(tx);
      }
      const records = await this.#appendAndCommit(
        conn,
        txs.flatMap((tx) => tx.drafts),
      );
      let at = 0;
      results = txs.map((tx, i) => {
        const own = records.slice(at, at + tx.drafts.length);
        at += tx.drafts.length;
        return { value: values[i], records: own };
      });
    } catch (error) {
      await conn.rollback(error);
      conn.release();
      // Run again alone only when one operation may be to blame: not when the connection
      // broke, the commit's outcome is unknown, or the database is busy (every operation run
      // alone would add to what made it busy).
      if (isConnectionError(error) || isCommitOutcomeUnknown(error) || isContentionError(error)) {
        const mapped = pgStorageError(error) ?? error;
        for (const op of ops) op.reject(mapped);
        return;
      }
      if (batch.abandoned) return;
      await Promise.all(
        ops.map((op) => this.#writeAlone("agent", op.fn, op.locks).then(op.resolve, op.reject)),
      );
      return;
    }
    conn.release();
    this.#operations += ops.length;
    this.#commits += 1;
    ops.forEach((op, i) => {
      op.resolve(results[i] as { value: unknown; records: AuditRecord[] });
    });
  }

  /**
   * `work`, or `Stalled` once it has gone `#stallLimitMs` without settling; then the pool is
   * replaced (its connections may be the stuck ones). `work` goes on in the background, its
   * outcome ignored.
   */
  async #bounded<T>(work: Promise<T>, generation: number): Promise<T> {
    work.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new Stalled("the database did not answer in time");
        this.#pool.failed(error, generation);
        reject(error);
      }, this.#stallLimitMs);
      // A stuck operation must not keep the process alive after the store is closed.
      timer.unref();
    });
    try {
      return await Promise.race([work, stalled]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Refuses later writes and closes the pool once the queries in flight are done. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.end();
  }

  /**
   * Appends `drafts` to the chain and commits, in one message: `keyhole_audit_append`
   * (migration 003) chains and inserts them under the `audit_head` row lock and the COMMIT
   * follows at once, so the lock is held inside the database only, never while this process is
   * busy. The next append, from any server, chains onto these.
   */
  async #appendAndCommit(
    conn: TxConnection,
    unchecked: readonly AuditDraft[],
  ): Promise<AuditRecord[]> {
    const drafts = unchecked.map(wellFormedDraft);
    for (const draft of drafts) this.#beforeAuditAppend?.(draft);
    let appended: { appended_seq: number; appended_hash: Buffer }[];
    try {
      appended = await conn.commitAfter(drafts.length === 0 ? null : appendStatement(drafts));
    } catch (error) {
      // A PostgreSQL error means the COMMIT was refused or never ran (the transaction is
      // aborted, rolled back by the caller), and so does a message never sent because the
      // connection had closed (PostgreSQL rolls back a transaction whose connection dies); a
      // connection that broke while it ran means nobody knows.
      if (isConnectionError(error) && !(error instanceof ConnectionLost)) {
        throw commitOutcomeUnknown(error);
      }
      throw error;
    }
    if (appended.length !== drafts.length) {
      // Committed, but not as asked: never to be run again (a batch would rerun it).
      throw commitOutcomeUnknown(new Error("the audit append answered another entry count"));
    }
    return drafts.map((draft, i) => {
      const { appended_seq: seq, appended_hash: hash } = appended[i] as (typeof appended)[number];
      return { seq, ...draft, hash: new Uint8Array(hash) };
    });
  }

  /** The schema unqualified names resolve to: where the migrations put the tables. */
  async #currentSchema(): Promise<string> {
    const [row] = await this.sql<{ schema: string | null }[]>`SELECT current_schema() AS schema`;
    if (!row?.schema) throw new KeyholeError("config_error", "the database has no current schema");
    return row.schema;
  }

  /**
   * Applies pending migrations in one transaction under an advisory lock: the first server to
   * start applies them, the others wait and then find nothing to do. A database migrated by a
   * newer server is refused.
   */
  async #migrate(): Promise<void> {
    await transaction(this.sql, async (tx) => {
      // A server starting while another migrates waits for it, however long that takes,
      // rather than failing at the usual limits.
      await tx`SET LOCAL lock_timeout = 0`;
      await tx`SET LOCAL statement_timeout = 0`;
      await tx.unsafe(MIGRATION_LOCK_STATEMENT);
      // Prefixed: another application's `schema_migrations` in the same schema must never be
      // taken for ours (its rows would skip our migrations).
      await tx`CREATE TABLE IF NOT EXISTS keyhole_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`;
      const rows = await tx<{ version: number }[]>`SELECT version FROM keyhole_migrations`;
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
        await tx`INSERT INTO keyhole_migrations (version, name, applied_at)
                 VALUES (${migration.version}, ${migration.name}, ${Date.now()})`;
      }
    });
  }
}

/**
 * `SELECT … FROM keyhole_audit_append(…)` for `drafts`, as statement text: it goes out with the
 * COMMIT in one simple-protocol message, which carries no parameters. The drafts travel as the
 * hex of their JSON, so the text holds nothing but this fixed statement and hex digits: no
 * request's text is ever parsed as SQL. Each draft is its audit columns and its canonical entry
 * bytes from core with `seq` 0, which the function fills in (migration 003).
 */
function appendStatement(drafts: readonly AuditDraft[]): string {
  const json = JSON.stringify(
    drafts.map((draft) => ({
      ts: draft.ts,
      request_id: draft.requestId,
      actor_type: draft.actorType,
      actor_id: draft.actorId,
      action: draft.action,
      result: draft.result,
      agent_id: draft.agentId,
      secret_id: draft.secretId,
      secret_version: draft.secretVersion,
      client_ip: draft.clientIp,
      user_agent: draft.userAgent,
      detail: draft.detail,
      entry: Buffer.from(encodeAuditEntry({ seq: 0, ...draft })).toString("hex"),
    })),
  );
  const hex = Buffer.from(json, "utf8").toString("hex");
  if (!/^[0-9a-f]+$/.test(hex)) throw new Error("the drafts' hex is not hex");
  return `SELECT appended_seq, appended_hash
    FROM keyhole_audit_append(convert_from(decode('${hex}', 'hex'), 'UTF8')::json)`;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what this looks for.
const NOT_STORABLE_POSSIBLE = /[\u0000\uD800-\uDFFF]/;

/**
 * The draft with every text made storable: a lone surrogate becomes U+FFFD (as UTF-8 encoding
 * does anyway) and so does NUL, which PostgreSQL's text cannot hold. The columns and the hashed
 * bytes then hold the same characters. Neither reaches an entry today (user agents are
 * cleaned, names checked, request ids made by the server); this keeps a future field from
 * failing every audited request that carries one.
 */
function wellFormedDraft(draft: AuditDraft): AuditDraft {
  const copy: Record<string, unknown> = { ...draft };
  for (const [field, value] of Object.entries(copy)) {
    if (typeof value === "string" && NOT_STORABLE_POSSIBLE.test(value)) {
      copy[field] = Buffer.from(value, "utf8").toString("utf8").replaceAll("\u0000", "\uFFFD");
    }
  }
  return copy as unknown as AuditDraft;
}
