/**
 * Group commit for agent operations on PostgreSQL, as group-commit.ts is for SQLite.
 *
 * Every audited transaction ends with the chain append under the `audit_head` row lock and a
 * WAL flush, one after another across all servers: one transaction per fetch caps the whole
 * cluster near one fetch per flush. So a server runs the agent operations (fetch, list, self,
 * failed-authentication entries) that arrive while its earlier ones are in flight together:
 * one transaction, one round trip for BEGIN and every operation's locks, each operation's reads
 * in turn, then one append of all their entries with the COMMIT. A lone operation runs at once,
 * as a batch of one; under load, batches grow by themselves.
 *
 * This class only queues and groups; `PgDb` runs a batch (postgres-db.ts). No answer leaves
 * before its batch committed, and an operation that throws in a batch does not take the
 * others down: the batch is rolled back and each of its operations runs again on its own.
 * The operations of a batch run in the order of their lock keys (postgres-db.ts), so batches
 * that update the same rows (limited grants' use counts) never wait on each other crosswise.
 */
/** How much to group. */
export interface BatchLimits {
  /** Batches in flight at once, each on its own connection. */
  readonly batches: number;
  /** Operations in one batch at most. */
  readonly operations: number;
}

export class Batcher<Op> {
  readonly #limits: BatchLimits;
  readonly #runBatch: (ops: readonly Op[]) => Promise<void>;
  #queue: Op[] = [];
  #inFlight = 0;

  /** `runBatch` settles every operation it is given; it must not throw. */
  constructor(limits: BatchLimits, runBatch: (ops: readonly Op[]) => Promise<void>) {
    if (!(limits.batches >= 1 && limits.operations >= 1)) {
      throw new RangeError("a batcher needs at least one batch of one operation");
    }
    this.#limits = limits;
    this.#runBatch = runBatch;
  }

  /** Queues `op`; it runs with the next batch that starts. */
  add(op: Op): void {
    this.#queue.push(op);
    this.#startBatches();
  }

  #startBatches(): void {
    while (this.#inFlight < this.#limits.batches && this.#queue.length > 0) {
      const ops = this.#queue.splice(0, this.#limits.operations);
      this.#inFlight += 1;
      void this.#runBatch(ops).finally(() => {
        this.#inFlight -= 1;
        this.#startBatches();
      });
    }
  }
}
