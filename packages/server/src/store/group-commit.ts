/**
 * Group commit: the write operations that arrive in one event-loop turn run in one SQLite
 * transaction, and every one of them is answered only once that transaction has committed
 * (`synchronous=FULL`: the WAL is fsynced at commit). One fsync then stands for many audited
 * reads under load, while each answer still waits for its own audit entry to be durable; with
 * one request at a time a batch is one operation and nothing changes.
 *
 * Each operation runs inside its own SAVEPOINT: one that throws (a lost race, a refused write, a
 * bug) is rolled back alone and rejects alone; the others commit. If the COMMIT fails, or an
 * error makes SQLite abandon the whole transaction (a full disk), nothing of the batch is kept
 * and every operation in it rejects with that error: none of them was answered yet. (So on a
 * nearly full disk one large write can take the small writes of its batch down with it; each
 * is still answered truly, and each can be retried.)
 * The audit chain stays whole because each append reads the chain head inside the transaction:
 * an operation sees the entries of those before it in the batch, and a rolled-back one leaves
 * no entry for a later one to have chained onto.
 */
import type Database from "better-sqlite3";

/** At most this many operations share one commit (bounds a batch's latency and its memory). */
export const MAX_BATCH = 256;

interface Pending {
  readonly fn: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** Runs write operations in batches, one transaction and one commit per batch. */
export class GroupCommit {
  readonly #db: Database.Database;
  readonly #translate: (error: unknown) => unknown;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #scheduled = false;
  #commits = 0;
  #operations = 0;
  /** Whoever waits (close) for the queue to empty with no batch due. */
  #waiters: (() => void)[] = [];

  /** `translate` maps an SQLite error to the one callers see (storage-errors.ts). */
  constructor(db: Database.Database, translate: (error: unknown) => unknown, maxBatch = MAX_BATCH) {
    this.#db = db;
    this.#translate = translate;
    this.#maxBatch = maxBatch;
  }

  /** Queues `fn` for the next batch; resolves with its result once its batch has committed. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.#schedule();
    });
  }

  /** Batches committed and operations run so far: operations ÷ commits is the fsync saving. */
  get stats(): { readonly commits: number; readonly operations: number } {
    return { commits: this.#commits, operations: this.#operations };
  }

  /** Resolves once every queued operation has been committed or rejected. */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
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
    const outcomes = this.#commit(batch);
    batch.forEach((op, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) op.resolve(outcome.value);
      else op.reject(outcome?.error);
    });
    // Idle only after the answers are out, so whoever waits for it (close) comes after them.
    if (this.#queue.length > 0) {
      this.#schedule();
      return;
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Runs the batch in one transaction; the outcome of each operation, in order. */
  #commit(batch: readonly Pending[]): Outcome[] {
    const outcomes: Outcome[] = [];
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      for (const op of batch) {
        this.#db.exec("SAVEPOINT op");
        try {
          const value = op.fn();
          if (value instanceof Promise) {
            // Its awaits would run outside this transaction: refused, and rolled back.
            value.catch(() => {});
            throw new TypeError("a write operation must be synchronous");
          }
          this.#db.exec("RELEASE op");
          outcomes.push({ ok: true, value });
        } catch (error) {
          // Some errors (a full disk, I/O) make SQLite roll back the whole transaction: then
          // the batch is lost, and every operation in it fails with this error.
          if (!this.#db.inTransaction) throw error;
          this.#db.exec("ROLLBACK TO op");
          this.#db.exec("RELEASE op");
          outcomes.push({ ok: false, error: this.#safeTranslate(error) });
        }
      }
      this.#db.exec("COMMIT");
      this.#commits += 1;
      this.#operations += batch.length;
      return outcomes;
    } catch (error) {
      // BEGIN, a savepoint or the COMMIT failed: nothing of the batch is kept.
      if (this.#db.inTransaction) {
        try {
          this.#db.exec("ROLLBACK");
        } catch {
          // SQLite has already rolled back (it does on some I/O errors): nothing left to undo.
        }
      }
      const failure = this.#safeTranslate(error);
      return batch.map(() => ({ ok: false, error: failure }));
    }
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

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };
