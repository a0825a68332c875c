/**
 * Storage faults: what a full disk, a read-only file system or a failing device look like to the
 * server, and how they are answered. A write SQLite cannot make becomes `storage_unavailable`
 * (503, `Retry-After`), contention becomes `unavailable` (503); in both cases better-sqlite3 has
 * already rolled the `BEGIN IMMEDIATE` transaction back, so nothing was half-written. The SQLite
 * result code (never the error's message, which can quote SQL) is kept beside the answer so the
 * app can log and count it, and `StorageHealth` remembers the last failure for `/readyz`.
 *
 * Reads that need no audit entry keep working while writes fail. Agent reads and owner secret
 * reads write one audit entry in the same transaction (fail closed: no entry, no answer), so they
 * get `storage_unavailable` too; that is deliberate (docs/reliability.md, "Disk full").
 */
import { isKeyholeError, KeyholeError } from "@keyhole/core";

/** The code of a failed fsync of the WAL: SQLite's own, which wal-sync.ts gives its errors. */
export const SYNC_FAILED_CODE = "SQLITE_IOERR_FSYNC";

/** What the client is told to wait before retrying a write that failed for lack of storage. */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/** How long `/readyz` reports not ready after a storage failure, unless a write succeeds. */
export const STORAGE_NOT_READY_MS = 10_000;

// The disk is full or over quota, the file system or file is read-only, or the device fails.
// SQLITE_IOERR covers its extended codes (SQLITE_IOERR_WRITE, _FSYNC, _SHMMAP, ...).
const STORAGE_FAULT = /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|NOLFS|PERM)/;
// Another process holds the write lock past the busy timeout: nothing wrong with the disk.
const CONTENTION = /^SQLITE_(BUSY|LOCKED)/;
// The codes a start-up error may carry that mean the data directory cannot be written.
const DISK_FULL = new Set(["ENOSPC", "EDQUOT", "SQLITE_FULL"]);
const READ_ONLY = /^(EROFS|SQLITE_READONLY)/;

// The SQLite code behind each answer we made from one; a WeakMap keeps it off the error object,
// which travels to the wire and the logs.
const causes = new WeakMap<KeyholeError, string>();

/**
 * The coded error for a storage fault or contention thrown by better-sqlite3, remembering its
 * SQLite code; null for anything else (a KeyholeError, a constraint, a bug).
 */
export function storageError(error: unknown): KeyholeError | null {
  const code = sqliteCode(error);
  if (code === null) return null;
  let mapped: KeyholeError;
  if (code === SYNC_FAILED_CODE) {
    // The commit was already visible when its fsync failed: it may or may not be kept, and
    // nothing is stored again until a restart. So no "retry after", and no "nothing changed".
    mapped = new KeyholeError(
      "storage_unavailable",
      "the server's disk failed to confirm a write: its outcome is unknown, and the server " +
        "stores nothing more until it is restarted; re-read before retrying",
    );
  } else if (STORAGE_FAULT.test(code)) {
    mapped = new KeyholeError("storage_unavailable", undefined, {
      retryAfterSeconds: STORAGE_RETRY_AFTER_SECONDS,
    });
  } else if (CONTENTION.test(code)) {
    mapped = new KeyholeError("unavailable", "the database is busy; retry shortly", {
      retryAfterSeconds: 1,
    });
  } else {
    return null;
  }
  causes.set(mapped, code);
  return mapped;
}

/**
 * Remembers the database's code (`SQLITE_…`, `PG_…`) behind an answer another adapter made
 * (postgres-errors.ts), for the app's log line and counter; returns the error.
 */
export function withStorageCause(error: KeyholeError, code: string): KeyholeError {
  causes.set(error, code);
  return error;
}

/** The SQLite code behind an error `storageError` made, or null. */
export function storageCause(error: unknown): string | null {
  if (typeof error !== "object" || error === null) return null;
  return causes.get(error as KeyholeError) ?? null;
}

/**
 * The `storage_unavailable` error for one that stops the server from starting because the data
 * directory cannot be written (disk full, quota, read-only file system or database), or null for
 * other errors. Its one-line message names the directory and the system or SQLite code, never
 * the original error's message.
 */
export function startupStorageError(error: unknown, dataDir: string): KeyholeError | null {
  const message = describeStartupFault(error, dataDir);
  return message === null ? null : new KeyholeError("storage_unavailable", message);
}

function describeStartupFault(error: unknown, dataDir: string): string | null {
  // A write at start-up (migrations, the vault record) comes back already mapped: use its cause.
  const code = storageCause(error) ?? (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return null;
  if (DISK_FULL.has(code)) {
    return `the disk holding ${dataDir} is full (${code}); free some space and start again`;
  }
  if (READ_ONLY.test(code)) {
    return (
      `${dataDir} is on a read-only file system or the database is read-only (${code}); ` +
      "the server must be able to write there"
    );
  }
  if (STORAGE_FAULT.test(code)) {
    return `cannot use the database in ${dataDir} (${code})`;
  }
  return null;
}

/**
 * The last storage failure, for readiness: not ready for `STORAGE_NOT_READY_MS` after one, or
 * until a write succeeds. A time window rather than a flag, so a server nobody sends traffic to
 * (a load balancer took it out) becomes ready again by itself and gets a chance to prove it.
 */
export class StorageHealth {
  readonly #clock: () => number;
  #lastFailure: number | null = null;

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  /** A write failed for lack of storage. */
  failed(): void {
    this.#lastFailure = this.#clock();
  }

  /** A write committed: the storage works again. */
  succeeded(): void {
    this.#lastFailure = null;
  }

  /** True while writes are believed to fail. */
  failing(): boolean {
    return this.#lastFailure !== null && this.#clock() - this.#lastFailure < STORAGE_NOT_READY_MS;
  }
}

function sqliteCode(error: unknown): string | null {
  if (isKeyholeError(error)) return null;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : null;
}
