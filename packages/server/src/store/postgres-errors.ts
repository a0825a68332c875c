/**
 * What PostgreSQL's errors mean to the server's clients, as storage-errors.ts does for SQLite.
 * The answer carries only a code and a fixed message: a PostgreSQL error's message and `detail`
 * can quote the values of a row (`Key (token_id)=(…) already exists`), so they never reach the
 * wire or the log. The cause kept beside the answer is `PG_` + the SQLSTATE or the driver's
 * connection code.
 */
import { isKeyholeError, KeyholeError } from "@keyhole/core";
import { STORAGE_RETRY_AFTER_SECONDS, withStorageCause } from "./storage-errors.js";

// The driver's own codes, and the system's, for a connection that failed or broke; UNREACHABLE
// is ours, for a statement refused without trying while the database is down (postgres-pool.ts),
// and so is STALLED, for work given up after going unanswered too long (postgres-db.ts).
const CONNECTION_CODES = new Set([
  "UNREACHABLE",
  "STALLED",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  // A Unix socket's file missing (the server restarting).
  "ENOENT",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

// SQLSTATE classes and codes (PostgreSQL's Appendix A).
// connection exception; shutdown, database dropped, idle session ended; too many connections;
// the idle-in-transaction limit (which ends the session too)
const CONNECTION_STATES = /^(08|57P0[1-5]$|53300$|25P03$)/;
const CONTENTION_STATES = /^(40001|40P01|55P03|57014)$/; // serialization, deadlock, lock, timeout
const STORAGE_STATES = /^(53|58|25006$)/; // disk full / out of memory, I/O, read-only
const CONFLICT_STATES = /^(23505|23503|23P01)$/; // unique, foreign key, exclusion

/**
 * True for a refusal that says nothing about the statement itself: a serialization failure, a
 * deadlock, a lock or statement timeout. Another try, later, may succeed.
 */
export function isContentionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && CONTENTION_STATES.test(code);
}

/** True when the connection failed or broke, rather than PostgreSQL refusing a statement. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (CONNECTION_CODES.has(code) || CONNECTION_STATES.test(code));
}

/**
 * The coded error for a PostgreSQL or connection failure, remembering its code; the error
 * itself when it is already a KeyholeError; null for anything else (a bug: a 500).
 */
export function pgStorageError(error: unknown): KeyholeError | null {
  if (isKeyholeError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return null;
  if (isConnectionError(error)) {
    return withStorageCause(
      new KeyholeError("unavailable", "the database is unreachable; retry shortly", {
        retryAfterSeconds: 1,
      }),
      `PG_${code}`,
    );
  }
  if (CONTENTION_STATES.test(code)) {
    return withStorageCause(
      new KeyholeError("unavailable", "the database is busy; retry shortly", {
        retryAfterSeconds: 1,
      }),
      `PG_${code}`,
    );
  }
  if (STORAGE_STATES.test(code)) {
    return withStorageCause(
      new KeyholeError("storage_unavailable", undefined, {
        retryAfterSeconds: STORAGE_RETRY_AFTER_SECONDS,
      }),
      `PG_${code}`,
    );
  }
  if (CONFLICT_STATES.test(code)) return new KeyholeError("conflict");
  return null;
}

/**
 * The error for a COMMIT whose answer never came (the connection broke while it ran): the
 * transaction may or may not be kept, as after a failed fsync in SQLite, so no "retry after".
 */
export function commitOutcomeUnknown(error: unknown): KeyholeError {
  const code = (error as { code?: unknown } | null)?.code;
  const unknown = withStorageCause(
    new KeyholeError(
      "unavailable",
      "the database connection broke while a change was being committed: it may or may not " +
        "have been made; re-read before retrying",
    ),
    `PG_${typeof code === "string" ? code : "COMMIT_UNKNOWN"}`,
  );
  outcomeUnknown.add(unknown);
  return unknown;
}

const outcomeUnknown = new WeakSet<object>();

/** True for `commitOutcomeUnknown`'s errors: whatever failed may have been committed. */
export function isCommitOutcomeUnknown(error: unknown): boolean {
  return typeof error === "object" && error !== null && outcomeUnknown.has(error);
}
