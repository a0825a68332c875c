/**
 * Group commit: the write operations that arrive in one event-loop turn run in one SQLite
 * transaction, and every one of them is answered only once that transaction is on disk. One
 * fsync then stands for many audited reads under load, while each answer still waits for its own
 * audit entry to be durable; with one request at a time a batch is one operation.
 *
 * The fsync itself runs off the event loop (durability-gate.ts, wal-sync.ts): the COMMIT only
 * appends to the WAL, the gate syncs it from the thread pool and releases the batch's answers
 * after. Meanwhile the next batches commit, and one sync covers them together.
 *
 * An operation that throws (a lost race, a refused write, a bug) is rolled back alone and
 * rejects alone; the others commit. Failures are rare, so a batch first runs with no SAVEPOINT
 * (two statements fewer per operation, on the hot path); if one of its operations throws, the
 * whole transaction is rolled back and the batch runs again from the start with each operation
 * in a SAVEPOINT of its own. Nothing of the first run was answered or kept, so running an
 * operation twice is unobservable: operations are synchronous functions of the database (their
 * inputs, such as the time, are fixed before they are queued).
 * If the COMMIT fails, or an error makes SQLite abandon the whole transaction (a full disk),
 * nothing of the batch is kept and every operation in it rejects with that error: none of them
 * was answered yet. (So on a nearly full disk one large write can take the small writes of its
 * batch down with it; each is still answered truly, and each can be retried.)
 * The audit chain stays whole because each append reads the chain head inside the transaction:
 * an operation sees the entries of those before it in the batch, and a rolled-back one leaves
 * no entry for a later one to have chained onto.
 */
import { KeyholeError } from "@keyhole/core";
import type Database from "better-sqlite3";
import type { DurabilityGate } from "./durability-gate.js";

/** At most this many operations share one commit (bounds a batch's latency and its memory). */
export const MAX_BATCH = 256;

/**
 * At most this many operations queued or committed and waiting for their fsync; more are refused
 * with a 503. A disk that stops confirming writes (a stalled fsync) then sheds new work instead
 * of piling it up in memory while the event loop, unlike with a synchronous fsync, stays free.
 */
export const MAX_UNSYNCED = 4 * MAX_BATCH;

/** How a batch runs; tests shrink the batch. */
export interface GroupCommitOptions {
  /** At most this many operations per commit (MAX_BATCH unless a test says otherwise). */
  readonly maxBatch?: number;
  /**
   * Called when a transaction begins and after every rollback, whole or to a savepoint: whoever
   * remembers state across the statements of one transaction (the audit chain head) forgets it.
   */
  readonly onTransactionReset?: () => void;
}

interface Pending {
  readonly fn: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** Runs write operations in batches, one transaction and one commit per batch. */
export class GroupCommit {
  readonly #db: Database.Database;
  readonly #gate: DurabilityGate;
  readonly #translate: (error: unknown) => unknown;
  readonly #maxBatch: number;
  readonly #onReset: () => void;
  readonly #control: TransactionControl;
  #queue: Pending[] = [];
  #scheduled = false;
  /** Operations committed (or failed in a committed batch) whose answers wait for the fsync. */
  #unsynced = 0;
  #closed = false;
  #commits = 0;
  #operations = 0;
  /** Batches run a second time, with savepoints, because one of their operations threw. */
  #reruns = 0;
  /** Whoever waits (close) for the queue to empty with no batch due. */
  #waiters: (() => void)[] = [];

  /**
   * `gate` holds the answers until their commit is on disk; `translate` maps an SQLite error to
   * the one callers see (storage-errors.ts).
   */
  constructor(
    db: Database.Database,
    gate: DurabilityGate,
    translate: (error: unknown) => unknown,
    options: GroupCommitOptions = {},
  ) {
    this.#db = db;
    this.#gate = gate;
    this.#translate = translate;
    this.#maxBatch = options.maxBatch ?? MAX_BATCH;
    this.#onReset = options.onTransactionReset ?? (() => {});
    this.#control = prepareControl(db);
  }

  /** Queues `fn` for the next batch; resolves with its result once its batch has committed. */
  run<T>(fn: () => T): Promise<T> {
    try {
      this.#gate.check();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closed) {
      return Promise.reject(new KeyholeError("unavailable", "the store is closing"));
    }
    if (this.#queue.length + this.#unsynced >= MAX_UNSYNCED) {
      return Promise.reject(
        new KeyholeError("unavailable", "the disk is slow to confirm writes; retry shortly", {
          retryAfterSeconds: 1,
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /**
   * Batches committed, operations run, fsyncs made and batches rerun with savepoints so far:
   * operations ÷ syncs is the saving.
   */
  get stats(): {
    readonly commits: number;
    readonly operations: number;
    readonly syncs: number;
    readonly reruns: number;
  } {
    return {
      commits: this.#commits,
      operations: this.#operations,
      syncs: this.#gate.syncs,
      reruns: this.#reruns,
    };
  }

  /** Refuses every later write (shutdown); what is queued still runs. */
  close(): void {
    this.#closed = true;
  }

  /** Resolves once every queued operation has been committed, and synced, or rejected. */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled) return this.#gate.settled();
    return new Promise<void>((resolve) => this.#waiters.push(resolve)).then(() =>
      this.#gate.settled(),
    );
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // After the I/O callbacks of this turn: the requests that arrived together share a commit.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue.splice(0, this.#maxBatch);
    try {
      // A sync failed since these were queued: nothing more is committed on this connection.
      this.#gate.check();
    } catch (error) {
      for (const op of batch) op.reject(error);
      this.#afterBatch();
      return;
    }
    const { commit, outcomes } = this.#commit(batch);
    const answer = () =>
      batch.forEach((op, i) => {
        const outcome = outcomes[i];
        if (outcome?.ok) op.resolve(outcome.value);
        else op.reject(outcome?.error);
      });
    if (commit === null) {
      answer(); // nothing of the batch was kept: nothing to wait for
    } else {
      this.#unsynced += batch.length;
      this.#gate.whenDurable(commit).then(
        () => {
          this.#unsynced -= batch.length;
          answer();
        },
        (error: unknown) => {
          this.#unsynced -= batch.length;
          for (const op of batch) op.reject(error);
        },
      );
    }
    this.#afterBatch();
  }

  /** Schedules the next batch, or tells whoever waits (close) that the queue is empty. */
  #afterBatch(): void {
    if (this.#queue.length > 0) {
      this.#schedule();
      return;
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Runs the batch in one transaction: the outcome of each operation, in order, and the gate's
   * number for the commit, or null when nothing was committed. Without savepoints first; again
   * with them if an operation throws.
   */
  #commit(batch: readonly Pending[]): { commit: number | null; outcomes: Outcome[] } {
    const control = this.#control;
    try {
      let outcomes = this.#runWhole(batch);
      if (outcomes === null) {
        this.#reruns += 1;
        outcomes = this.#runEachInSavepoint(batch);
      }
      control.commit.run();
      this.#commits += 1;
      this.#operations += batch.length;
      return { commit: this.#gate.committed(), outcomes };
    } catch (error) {
      // BEGIN, a savepoint or the COMMIT failed, or SQLite abandoned the transaction: nothing
      // of the batch is kept.
      this.#rollback();
      const failure = this.#safeTranslate(error);
      return { commit: null, outcomes: batch.map(() => ({ ok: false, error: failure })) };
    }
  }

  /**
   * Every operation in one open transaction with no savepoint. Returns null, with the
   * transaction rolled back, as soon as one throws; throws what SQLite abandoned the
   * transaction with.
   */
  #runWhole(batch: readonly Pending[]): Outcome[] | null {
    this.#begin();
    const outcomes: Outcome[] = [];
    for (const op of batch) {
      try {
        outcomes.push({ ok: true, value: runSynchronously(op) });
      } catch (error) {
        if (!this.#db.inTransaction) throw error;
        this.#rollback();
        return null;
      }
    }
    return outcomes;
  }

  /** Every operation in a savepoint of its own, in one open transaction: one that throws alone. */
  #runEachInSavepoint(batch: readonly Pending[]): Outcome[] {
    const control = this.#control;
    this.#begin();
    const outcomes: Outcome[] = [];
    for (const op of batch) {
      control.savepoint.run();
      try {
        const value = runSynchronously(op);
        control.release.run();
        outcomes.push({ ok: true, value });
      } catch (error) {
        // Some errors (a full disk, I/O) make SQLite roll back the whole transaction: then
        // the batch is lost, and every operation in it fails with this error.
        if (!this.#db.inTransaction) throw error;
        control.rollbackTo.run();
        control.release.run();
        this.#onReset();
        outcomes.push({ ok: false, error: this.#safeTranslate(error) });
      }
    }
    return outcomes;
  }

  #begin(): void {
    this.#control.begin.run();
    this.#onReset();
  }

  /** Rolls back the open transaction, if SQLite has not already (it does on some I/O errors). */
  #rollback(): void {
    if (this.#db.inTransaction) {
      try {
        this.#control.rollback.run();
      } catch {
        // Already rolled back: nothing left to undo.
      }
    }
    this.#onReset();
  }

  /** `translate`, which must not be able to leave a batch unanswered by throwing. */
  #safeTranslate(error: unknown): unknown {
    try {
      return this.#translate(error);
    } catch {
      return error;
    }
  }
}

/** Runs one operation, refusing an asynchronous one: its awaits would run outside the batch. */
function runSynchronously(op: Pending): unknown {
  const value = op.fn();
  if (value instanceof Promise) {
    value.catch(() => {});
    throw new TypeError("a write operation must be synchronous");
  }
  return value;
}

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

/** The transaction statements, prepared once: `exec` would parse them again on every use. */
interface TransactionControl {
  readonly begin: Database.Statement;
  readonly savepoint: Database.Statement;
  readonly release: Database.Statement;
  readonly rollbackTo: Database.Statement;
  readonly rollback: Database.Statement;
  readonly commit: Database.Statement;
}

function prepareControl(db: Database.Database): TransactionControl {
  return {
    begin: db.prepare("BEGIN IMMEDIATE"),
    savepoint: db.prepare("SAVEPOINT op"),
    release: db.prepare("RELEASE op"),
    rollbackTo: db.prepare("ROLLBACK TO op"),
    rollback: db.prepare("ROLLBACK"),
    commit: db.prepare("COMMIT"),
  };
}
