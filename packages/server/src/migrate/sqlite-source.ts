/**
 * The source of `keyhole migrate`: a stopped server's SQLite database, read-only, as one
 * consistent snapshot.
 *
 * - Given a data directory (or the `keyhole.db` beside a server's `pepper`), the directory
 *   gets the checks the server
 *   applies to it, and its lock is taken for the whole migration: refused while a server runs
 *   (whatever it wrote after the copy would be lost in the move), and a server started meanwhile
 *   refuses to start. Its `revoked-tokens` list is checked against the database (below).
 * - Any other file (a `keyhole backup` copy) is read as it is: it has no server.
 * - Every read runs in one read transaction, so even a writer we did not know of could not make
 *   the copy inconsistent: WAL readers see the database as of their first read.
 */
import { existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import {
  AUDIT_GENESIS,
  AuditChainVerifier,
  type AuditEntryView,
  KeyholeError,
} from "@keyhole/core";
import Database from "better-sqlite3";
import { sha256Sync } from "../audit/sha256.js";
import { RevokedTokens } from "../auth/revoked-tokens.js";
import { currentOwner, prepareDataDir } from "../data-dir.js";
import { type DataDirLock, dataDirUser, lockDataDir } from "../data-lock.js";
import { auditEntryView } from "../routes/views.js";
import { type AuditRow, toAudit } from "../store/sqlite-rows.js";
import { COPIED_SQLITE_VERSION, type Row, type TableSpec } from "./tables.js";

/** The database file's name in a data directory (data-dir.ts). */
const DB_FILE = "keyhole.db";

/** An open, locked, read-only snapshot of the source. */
export interface SqliteSource {
  readonly db: Database.Database;
  /** The database file. */
  readonly path: string;
  /** Its data directory, when it is one's `keyhole.db`; null for a loose file (a backup). */
  readonly dataDir: string | null;
  /** Ends the snapshot, closes the file and releases the lock. */
  close(): void;
}

/** Where the database file is and whether it lives in a data directory. */
function locate(from: string): { path: string; dataDir: string | null } {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(from).isDirectory();
  } catch {
    throw new KeyholeError("config_error", `${from} does not exist or cannot be read`);
  }
  if (isDirectory) {
    const path = join(from, DB_FILE);
    if (!existsSync(path)) throw new KeyholeError("config_error", `no ${DB_FILE} in ${from}`);
    return { path, dataDir: from };
  }
  // A server's keyhole.db named directly: its directory is a data directory when it holds the
  // pepper every server creates at its first start. Otherwise (a backup copied to /tmp) it is
  // a loose file, and its directory gets neither the data directory checks nor a lock.
  const dir = dirname(from);
  const isDataDir = basename(from) === DB_FILE && existsSync(join(dir, "pepper"));
  return { path: from, dataDir: isDataDir ? dir : null };
}

/** Checks and locks the data directory; null for a loose file. */
function lockSource(dataDir: string | null): DataDirLock | null {
  if (dataDir === null) return null;
  const user = dataDirUser(dataDir);
  if (user !== null) {
    throw new KeyholeError(
      "config_error",
      `stop the server first (pid ${user} uses ${dataDir}): migrate copies a stopped vault, ` +
        "so that nothing written after the copy is left behind",
    );
  }
  // The server's own checks (owner, modes, no symbolic links): a database another user could
  // have swapped in is not one to publish to PostgreSQL.
  prepareDataDir(dataDir);
  return lockDataDir(dataDir);
}

/** Opens the source read-only, locked, in one snapshot, after checking it is a whole vault. */
export function openSqliteSource(from: string): SqliteSource {
  const { path, dataDir } = locate(from);
  const lock = lockSource(dataDir);
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch {
    lock?.release();
    throw new KeyholeError("config_error", `${path} is not a readable SQLite database`);
  }
  const close = () => {
    try {
      if (db.inTransaction) db.exec("ROLLBACK");
      db.close();
    } finally {
      lock?.release();
    }
  };
  try {
    // Deferred: the snapshot is taken at the first read below and held until close().
    db.exec("BEGIN");
    checkSchema(db, path);
  } catch (error) {
    close();
    if (error instanceof KeyholeError) throw error;
    throw new KeyholeError("config_error", `${path} is not a Keyhole database`);
  }
  return { db, path, dataDir, close };
}

function checkSchema(db: Database.Database, path: string): void {
  const tables = db
    .prepare(
      `SELECT count(*) AS n FROM sqlite_master
       WHERE type = 'table' AND name IN ('schema_migrations', 'vault')`,
    )
    .get() as { n: number };
  if (tables.n !== 2) throw new KeyholeError("config_error", `${path} is not a Keyhole database`);
  const { version } = db.prepare("SELECT max(version) AS version FROM schema_migrations").get() as {
    version: number | null;
  };
  if (version === null || version > COPIED_SQLITE_VERSION) {
    throw new KeyholeError(
      "config_error",
      `${path} has schema version ${version ?? 0}, which this keyhole cannot migrate ` +
        `(it copies version ${COPIED_SQLITE_VERSION}); use the keyhole that wrote it`,
    );
  }
  if (version < COPIED_SQLITE_VERSION) {
    throw new KeyholeError(
      "config_error",
      `${path} has schema version ${version}: start this version's server on it once ` +
        "(it upgrades the database), stop it, then migrate",
    );
  }
  if (db.prepare("SELECT 1 FROM vault WHERE singleton = 1").get() === undefined) {
    throw new KeyholeError("config_error", `${path} holds no vault (no server ever started on it)`);
  }
}

/** Rows of `spec`'s table in SQLite rowid order, one page at a time (never the whole table). */
export function* sqlitePages(db: Database.Database, spec: TableSpec): Generator<Row[]> {
  // rowid is what the table is stored by (for `audit`, `seq` itself), so each page is one
  // index-free range scan; and it is the order `retired_tokens` was written in.
  const page = db.prepare(
    `SELECT rowid AS _rowid, ${spec.columns.join(", ")} FROM ${spec.name}
     WHERE rowid > ? ORDER BY rowid LIMIT ?`,
  );
  let after = 0;
  for (;;) {
    const rows = page.all(after, spec.pageRows) as (Row & { _rowid: number })[];
    if (rows.length === 0) return;
    after = (rows.at(-1) as { _rowid: number })._rowid;
    yield rows;
    if (rows.length < spec.pageRows) return;
  }
}

/** Rows per table in the snapshot. */
export function countRows(db: Database.Database, specs: readonly TableSpec[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const spec of specs) {
    const { n } = db.prepare(`SELECT count(*) AS n FROM ${spec.name}`).get() as { n: number };
    counts.set(spec.name, n);
  }
  return counts;
}

/** The source chain, verified from genesis. */
export interface SourceChain {
  readonly size: number;
  readonly head: Uint8Array;
  /**
   * Agents whose stored `last_used_at` is not the time of their newest entry as an agent, which
   * is what PostgreSQL derives it from (bulk-seeded databases, or rows written by hand).
   */
  readonly lastUsedDiffers: number;
}

/** Audit rows as the views the chain verifier takes. */
export function auditViews(rows: readonly Row[]): AuditEntryView[] {
  return rows.map((row) => auditEntryView(toAudit(row as unknown as AuditRow)));
}

/**
 * Verifies the whole audit log page by page (a log of millions never sits in memory) and
 * refuses a broken one, naming the first entry that does not verify.
 */
export function verifySourceChain(
  source: SqliteSource,
  auditSpec: TableSpec,
  onRows: (rows: number) => void,
): SourceChain {
  const verifier = new AuditChainVerifier(sha256Sync);
  const lastUse = new Map<string, number>();
  for (const rows of sqlitePages(source.db, auditSpec)) {
    const result = verifier.verify(auditViews(rows));
    if (!result.ok) {
      throw new KeyholeError(
        "config_error",
        `the audit log of ${source.path} does not verify: entry ${result.seq} ` +
          `(${result.reason.replace("_", " ")}). Refusing to copy a tampered or damaged log; ` +
          "nothing was written to PostgreSQL",
      );
    }
    for (const row of rows) {
      // As SqliteDb.appendDraft stamps it, and PostgreSQL reads it back (postgres-queries.ts).
      if (row.actor_type === "agent" && row.actor_id !== "") {
        lastUse.set(row.actor_id as string, row.ts as number);
      }
    }
    onRows(verifier.size);
  }
  let lastUsedDiffers = 0;
  for (const agent of source.db
    .prepare("SELECT id, last_used_at FROM agents")
    .iterate() as Iterable<{
    id: string;
    last_used_at: number | null;
  }>) {
    if ((lastUse.get(agent.id) ?? null) !== agent.last_used_at) lastUsedDiffers += 1;
  }
  const size = verifier.size;
  return { size, head: size === 0 ? AUDIT_GENESIS : verifier.head, lastUsedDiffers };
}

/**
 * Refuses a vault whose data directory's revoked-token list names a token that is live in the
 * database: the database was restored from a backup older than a revoke or rotate. The SQLite
 * server keeps such a token out through that list; PostgreSQL servers rebuild theirs from the
 * database's `retired_tokens` alone, so the token would work again after the move.
 */
export function checkRevokedList(source: SqliteSource): void {
  if (source.dataDir === null) return;
  const path = join(source.dataDir, "revoked-tokens");
  // Missing before the first revoke of a vault never initialised; the server guards the rest.
  if (!existsSync(path)) return;
  const revoked = RevokedTokens.open(path, currentOwner(), "refuse");
  if (revoked.size === 0) return;
  const live = source.db
    .prepare(
      `SELECT a.name, t.token_id FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
       ORDER BY a.name`,
    )
    .iterate() as Iterable<{ name: string; token_id: Buffer }>;
  const names: string[] = [];
  for (const row of live) if (revoked.has(row.token_id)) names.push(row.name);
  if (names.length === 0) return;
  const shown = names.slice(0, 5).join(", ") + (names.length > 5 ? ", …" : "");
  throw new KeyholeError(
    "config_error",
    `${path} lists ${names.length} token(s) still live in the database (agents: ${shown}); ` +
      "it was restored from an older backup. PostgreSQL servers would accept them again: " +
      "start the SQLite server, revoke or rotate those agents, stop it, then migrate",
  );
}
