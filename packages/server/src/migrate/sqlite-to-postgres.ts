/**
 * `keyhole migrate`: copies a vault from the embedded SQLite database to PostgreSQL (issue 6),
 * for the move from one server to several on one database (docs/scaling.md).
 *
 * Raw rows, not Store operations: every id, time, byte string and audit entry arrives exactly
 * as it was, and the audit chain keeps its sequence numbers and hashes, so the owner's pinned
 * checkpoints still verify. In order:
 *
 * 1. The source is opened read-only as one snapshot, its data directory locked
 *    (sqlite-source.ts), and its audit chain verified from genesis: a broken chain is refused
 *    before anything touches PostgreSQL.
 * 2. PostgreSQL's migrations run (PgDb.open), then ONE transaction: it locks the tables, checks
 *    the target is empty, copies each table in pages of multi-row INSERTs (one in flight while
 *    the next page is read), sets `audit_head` to the last entry, then reads everything back
 *    and checks it (row counts, a digest of every table, the audit chain re-verified from
 *    genesis with the source's size and head) before COMMIT. Any failure rolls all of it back:
 *    the target is left as empty as it was.
 *
 * The `postgres` driver is loaded here on demand only (`import()`), so a server that never
 * migrates and runs on SQLite never loads it.
 *
 * Not in the database, so not copied (the CLI says so): the data directory's `pepper` and
 * `audit-key`, which the PostgreSQL servers must be given, and `revoked-tokens`, which each of
 * them rebuilds from the database's `retired_tokens`.
 */

import { AuditChainVerifier, equalBytes, isKeyholeError, KeyholeError } from "@keyhole/core";
import { sha256Sync } from "../audit/sha256.js";
import { checkDatabaseUrl } from "../database-url.js";
import type { ReservedSql } from "../store/postgres-db.js";
import { isConnectionError } from "../store/postgres-errors.js";
import { recordSharedKeys, type SharedKeyIds } from "../store/postgres-shared-keys.js";
import { sourceKeyIds } from "./source-keys.js";
import {
  auditViews,
  checkRevokedList,
  countRows,
  openSqliteSource,
  type SourceChain,
  type SqliteSource,
  sqlitePages,
  verifySourceChain,
} from "./sqlite-source.js";
import { type Row, TABLES, TableDigest, type TableSpec } from "./tables.js";

/** Where the copy goes. */
export interface MigrateTarget {
  /** `postgres://…` (never logged, never in an error message). */
  readonly url: string;
  /** The schema to create the tables in (default: the role's default, normally `public`). */
  readonly schema?: string;
}

/** How far the migration is, for a progress line. */
export interface MigrateProgress {
  readonly phase: "verify-source" | "copy" | "verify-target";
  readonly table: string;
  /** Rows done so far in this table (this phase). */
  readonly rows: number;
  /** True on a table's last report in this phase. */
  readonly done: boolean;
}

/** What `migrateSqliteToPostgres` does. */
export interface MigrateOptions {
  /** The SQLite source: a data directory (its `keyhole.db`) or a database file. */
  readonly from: string;
  readonly to: MigrateTarget;
  /** Called at each table's end and every 100,000 rows of a large one. */
  readonly onProgress?: (progress: MigrateProgress) => void;
  /**
   * Test-only fault injection: called inside the PostgreSQL transaction before each batch is
   * inserted. Throwing from it must fail the whole migration with nothing committed.
   */
  readonly beforeBatch?: (table: string, rows: number) => void;
}

/** What was copied. */
export interface MigrateSummary {
  /** The SQLite database file read. */
  readonly source: string;
  /** Its data directory (where `pepper` and `audit-key` are), or null for a loose file. */
  readonly dataDir: string | null;
  /** Rows copied per table, in copy order. */
  readonly rows: ReadonlyArray<{ readonly table: string; readonly rows: number }>;
  /** Audit entries and the chain head after the last one (32 zero bytes for none). */
  readonly auditSize: number;
  readonly auditHead: Uint8Array;
  /** The pepper ids of the live agent tokens: the PostgreSQL servers need that pepper. */
  readonly pepperKids: readonly string[];
  /** Agents whose `last_used_at` PostgreSQL will report differently (SourceChain). */
  readonly lastUsedDiffers: number;
  /** Wall time, milliseconds. */
  readonly ms: number;
}

/** How long the copy's one transaction may go unanswered before it is given up. */
const COPY_STALL_LIMIT_MS = 6 * 60 * 60_000;

/** Progress is reported every this many rows of a table. */
const PROGRESS_EVERY = 100_000;

/** Copies the vault; see the file comment. Resolves once the copy is committed. */
export async function migrateSqliteToPostgres(options: MigrateOptions): Promise<MigrateSummary> {
  const started = performance.now();
  const report = options.onProgress ?? (() => {});
  // The same rules as the server's --database-url (no parameter overriding our settings).
  checkDatabaseUrl(options.to.url);
  const source = openSqliteSource(options.from);
  try {
    checkRevokedList(source);
    const audit = TABLES.find((t) => t.chained) as TableSpec;
    let reported = 0;
    const chain = verifySourceChain(source, audit, (rows) => {
      if (rows - reported < PROGRESS_EVERY) return;
      reported = rows;
      report({ phase: "verify-source", table: audit.name, rows, done: false });
    });
    report({ phase: "verify-source", table: audit.name, rows: chain.size, done: true });
    const counts = countRows(source.db, TABLES);
    const pepperKids = (
      source.db.prepare("SELECT DISTINCT pepper_kid FROM agent_tokens ORDER BY 1").all() as {
        pepper_kid: string;
      }[]
    ).map((r) => r.pepper_kid);
    const keyIds = sourceKeyIds(source.dataDir, pepperKids);

    await copyToPostgres(options, source, chain, counts, keyIds);
    return {
      source: source.path,
      dataDir: source.dataDir,
      rows: TABLES.map((t) => ({ table: t.name, rows: counts.get(t.name) ?? 0 })),
      auditSize: chain.size,
      auditHead: chain.head,
      pepperKids,
      lastUsedDiffers: chain.lastUsedDiffers,
      ms: performance.now() - started,
    };
  } finally {
    source.close();
  }
}

async function copyToPostgres(
  options: MigrateOptions,
  source: SqliteSource,
  chain: SourceChain,
  counts: ReadonlyMap<string, number>,
  keyIds: SharedKeyIds | null,
): Promise<void> {
  // Loaded here only: it loads the driver (see the file comment).
  const { PgDb } = await import("../store/postgres-db.js");
  let db: Awaited<ReturnType<typeof PgDb.open>>;
  try {
    db = await PgDb.open({
      url: options.to.url,
      ...(options.to.schema === undefined ? {} : { schema: options.to.schema }),
      maxConnections: 1,
      // One transaction for the whole copy: a large vault takes minutes, well past the
      // servers' give-up time for a request (its statements have their own limit, below).
      stallLimitMs: COPY_STALL_LIMIT_MS,
    });
  } catch (error) {
    throw targetError(error, null);
  }
  try {
    // The owner-write advisory lock too: a PostgreSQL server already on this database (which
    // the emptiness check would then refuse anyway) makes no owner change meanwhile.
    await db.write("owner", async (tx) => {
      const copy = new Copy(tx.sql, options, source, chain, counts, keyIds);
      await copy.run();
    });
  } catch (error) {
    throw targetError(error, null);
  } finally {
    await db.close().catch(() => {});
  }
}

/** The work inside the one PostgreSQL transaction. */
class Copy {
  readonly #sql: ReservedSql;
  readonly #options: MigrateOptions;
  readonly #source: SqliteSource;
  readonly #chain: SourceChain;
  readonly #counts: ReadonlyMap<string, number>;
  readonly #keyIds: SharedKeyIds | null;
  readonly #digests = new Map<string, TableDigest>();

  constructor(
    sql: ReservedSql,
    options: MigrateOptions,
    source: SqliteSource,
    chain: SourceChain,
    counts: ReadonlyMap<string, number>,
    keyIds: SharedKeyIds | null,
  ) {
    this.#sql = sql;
    this.#keyIds = keyIds;
    this.#options = options;
    this.#source = source;
    this.#chain = chain;
    this.#counts = counts;
  }

  async run(): Promise<void> {
    const sql = this.#sql;
    // The servers' 20 s per statement is for requests; counting a large log may take longer.
    await sql`SET LOCAL statement_timeout = '10min'`;
    // Writers wait until we commit (plain reads do not): two migrations, or a server starting
    // on the target, cannot interleave with this one.
    await sql.unsafe(
      `LOCK TABLE ${[...TABLES.map((t) => t.name), "audit_head"].join(", ")} IN EXCLUSIVE MODE`,
    );
    await this.#checkEmpty();
    for (const spec of TABLES) await this.#copyTable(spec);
    if (this.#chain.size > 0) {
      await sql`UPDATE audit_head SET seq = ${this.#chain.size},
        hash = ${Buffer.from(this.#chain.head)} WHERE singleton = 1`;
    }
    for (const spec of TABLES) await this.#verifyTable(spec);
    await this.#verifyHead();
    await this.#recordSharedKeys();
  }

  /**
   * Records which pepper and audit key the PostgreSQL servers must use (migration 4): the data
   * directory's (source-keys.ts). Refused if the target already names others.
   */
  async #recordSharedKeys(): Promise<void> {
    if (this.#keyIds === null) return;
    try {
      await recordSharedKeys(this.#sql, this.#keyIds, Date.now());
    } catch (error) {
      if (!isKeyholeError(error) || error.code !== "config_error") throw error;
      throw new KeyholeError(
        "conflict",
        "the target database already names another pepper or audit key than the data " +
          "directory's: it belongs to other servers; nothing was written",
      );
    }
  }

  async #checkEmpty(): Promise<void> {
    const sql = this.#sql;
    const used: string[] = [];
    for (const spec of TABLES) {
      const [row] = await sql<{ used: boolean }[]>`
        SELECT EXISTS (SELECT 1 FROM ${sql(spec.name)}) AS used`;
      if (row?.used === true) used.push(spec.name);
    }
    const [head] = await sql<{ seq: number }[]>`SELECT seq FROM audit_head WHERE singleton = 1`;
    if (head === undefined) throw new Error("the audit head row is missing");
    if (head.seq !== 0) used.push("audit_head");
    if (used.length > 0) {
      throw new KeyholeError(
        "conflict",
        `the target database is not empty (rows in ${used.join(", ")}): migrate copies into ` +
          "a new database or schema only, and never merges two vaults; nothing was written",
      );
    }
  }

  async #copyTable(spec: TableSpec): Promise<void> {
    const sql = this.#sql;
    const digest = new TableDigest(spec);
    let copied = 0;
    let reported = 0;
    // One INSERT in flight while the next page is read from SQLite: the two drivers' work
    // overlaps. The connection runs its statements in the order they were sent.
    let inFlight: Promise<void> | null = null;
    for (const rows of sqlitePages(this.#source.db, spec)) {
      this.#options.beforeBatch?.(spec.name, rows.length);
      if (!spec.chained) {
        for (const row of rows) digest.add(row, spec.orderBy === null ? null : digest.rows + 1);
      }
      // One multi-row INSERT per page: rows go in in rowid order, so an identity column
      // (retired_tokens.ord) numbers them in SQLite's order.
      const values = rows as unknown as Record<string, Buffer | string | number | null>[];
      const insert = sql`INSERT INTO ${sql(spec.name)} ${sql(values, spec.columns as string[])}`
        // `then` sends it now.
        .then(
          () => undefined,
          (error: unknown) => {
            throw targetError(error, spec.name);
          },
        );
      // Handled from the start: when an earlier one fails (or a page cannot be read), this one
      // is never awaited, and fails too (the transaction is aborted); all is rolled back anyway.
      insert.catch(() => {});
      if (inFlight !== null) await inFlight;
      inFlight = insert;
      copied += rows.length;
      if (copied - reported >= PROGRESS_EVERY) {
        reported = copied;
        this.#report("copy", spec.name, copied, false);
      }
    }
    if (inFlight !== null) await inFlight;
    this.#report("copy", spec.name, copied, true);
    if (copied !== this.#counts.get(spec.name)) {
      throw mismatch(spec.name, "the rows read from SQLite changed during the copy");
    }
    this.#digests.set(spec.name, digest);
  }

  async #verifyTable(spec: TableSpec): Promise<void> {
    const sql = this.#sql;
    const [row] = await sql<{ n: number }[]>`SELECT count(*) AS n FROM ${sql(spec.name)}`;
    if (row?.n !== this.#counts.get(spec.name)) {
      throw mismatch(
        spec.name,
        `${row?.n ?? 0} rows read back, ${this.#counts.get(spec.name)} copied`,
      );
    }
    if (spec.chained) {
      await this.#verifyChain(spec);
      return;
    }
    const digest = new TableDigest(spec);
    const order = spec.orderBy === null ? sql`` : sql`ORDER BY ${sql(spec.orderBy)}`;
    const rows = sql<
      Row[]
    >`SELECT ${sql(spec.columns as string[])} FROM ${sql(spec.name)} ${order}`;
    for await (const page of rows.cursor(spec.pageRows)) {
      for (const r of page) digest.add(r, spec.orderBy === null ? null : digest.rows + 1);
    }
    this.#report("verify-target", spec.name, digest.rows, true);
    if (!digest.equals(this.#digests.get(spec.name) as TableDigest)) {
      throw mismatch(spec.name, "the rows read back differ from the rows copied");
    }
  }

  /** The chain as PostgreSQL holds it, from genesis: it must end where the source's ended. */
  async #verifyChain(spec: TableSpec): Promise<void> {
    const sql = this.#sql;
    const verifier = new AuditChainVerifier(sha256Sync);
    let reported = 0;
    const rows = sql<Row[]>`SELECT ${sql(spec.columns as string[])} FROM audit ORDER BY seq`;
    for await (const page of rows.cursor(spec.pageRows)) {
      const result = verifier.verify(auditViews(page));
      if (!result.ok) {
        throw mismatch("audit", `the chain read back breaks at entry ${result.seq}`);
      }
      if (verifier.size - reported >= PROGRESS_EVERY) {
        reported = verifier.size;
        this.#report("verify-target", spec.name, verifier.size, false);
      }
    }
    this.#report("verify-target", spec.name, verifier.size, true);
    if (verifier.size !== this.#chain.size || !equalBytes(verifier.head, this.#chain.head)) {
      throw mismatch("audit", "the chain read back does not end at the source's head");
    }
  }

  async #verifyHead(): Promise<void> {
    const [head] = await this.#sql<{ seq: number; hash: Buffer }[]>`
      SELECT seq, hash FROM audit_head WHERE singleton = 1`;
    if (
      head === undefined ||
      head.seq !== this.#chain.size ||
      !equalBytes(new Uint8Array(head.hash), this.#chain.head)
    ) {
      throw mismatch("audit_head", "it does not name the last entry copied");
    }
  }

  #report(phase: MigrateProgress["phase"], table: string, rows: number, done: boolean): void {
    this.#options.onProgress?.({ phase, table, rows, done });
  }
}

function mismatch(table: string, what: string): KeyholeError {
  return new KeyholeError(
    "internal",
    `the copy of ${table} did not check out (${what}); nothing was committed`,
  );
}

// SQLSTATEs worth a sentence of their own (PostgreSQL's Appendix A).
const REFUSALS: Readonly<Record<string, string>> = {
  "28P01": "the target database refused the login",
  "28000": "the target database refused the login",
  "3D000": "the target database does not exist",
  "3F000": "the target schema does not exist (create it first: CREATE SCHEMA …)",
  "42501": "the target role lacks a privilege the migration needs",
  "25006": "the target database is read-only",
};

/**
 * A failure on the target as one coded line: the SQLSTATE or the driver's code, never the
 * driver's message, which can quote a row's values (`Key (token_id)=(…)`) or, for a bad
 * connection string, the string itself.
 */
function targetError(error: unknown, table: string | null): unknown {
  if (isKeyholeError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !/^[A-Z0-9_]{1,40}$/.test(code)) return error;
  const tail = "; nothing was committed";
  if (isConnectionError(error)) {
    return new KeyholeError(
      "unavailable",
      `the target database is unreachable or the connection broke (${code})${tail}`,
    );
  }
  const known = REFUSALS[code];
  if (known !== undefined) return new KeyholeError("config_error", `${known} (SQLSTATE ${code})`);
  // A SQLSTATE only on the server's own errors: a 5-letter errno (EROFS) is not one.
  const fromServer = (error as { name?: unknown }).name === "PostgresError";
  if (!fromServer || !/^[0-9A-Z]{5}$/.test(code)) return error;
  if (table !== null) {
    const why = code.startsWith("23")
      ? ": a constraint the source database did not enforce"
      : code.startsWith("22")
        ? ": a value PostgreSQL cannot store"
        : "";
    return new KeyholeError(
      "conflict",
      `PostgreSQL refused a row of ${table} (SQLSTATE ${code}${why})${tail}`,
    );
  }
  return new KeyholeError(
    "config_error",
    `PostgreSQL refused the migration (SQLSTATE ${code})${tail}`,
  );
}
