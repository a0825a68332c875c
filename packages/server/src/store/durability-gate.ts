/**
 * The durability gate: nothing a commit wrote leaves the server before that commit is on disk.
 *
 * Commits are numbered as they are made; one sync at a time (WalSync, off the event loop) makes
 * every commit up to its start durable. A write's answer waits for the sync that covers its
 * batch's commit (`whenDurable`), and a read's result waits for the sync that covers every commit
 * it could have seen (`afterDurable`): a commit is visible to the next statement at once, long
 * before its fsync, and a result shown from it and then lost to a power cut would be a lie (an
 * audit head the log no longer has, say). While one sync runs the next batches commit, and the
 * sync after it covers them all together.
 *
 * A failed sync is final: after an fsync error the kernel may have dropped the unwritten pages,
 * and a later fsync that succeeds says nothing about them. So every waiting answer fails, and so
 * does every later read and write, until the server is restarted and SQLite recovers from what
 * is really on disk.
 */

interface Waiter {
  readonly upTo: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class DurabilityGate {
  readonly #sync: () => Promise<void>;
  readonly #translate: (error: unknown) => unknown;
  /** Commits made so far, and of those the ones known to be on disk. */
  #committed = 0;
  #durable = 0;
  #syncs = 0;
  #syncing = false;
  /** Each waits for the sync that covers commit `upTo`. */
  #waiting: Waiter[] = [];
  /** The error of the sync that failed; once set, nothing is answered from this connection. */
  #failure: { readonly error: unknown } | undefined;

  /** `sync` makes every commit so far durable; `translate` turns its error into the answer. */
  constructor(sync: () => Promise<void>, translate: (error: unknown) => unknown) {
    this.#sync = sync;
    this.#translate = translate;
  }

  /** Syncs started so far: the fsyncs the commits cost. */
  get syncs(): number {
    return this.#syncs;
  }

  /** Throws the failure of an earlier sync, if one failed. */
  check(): void {
    if (this.#failure) throw this.#failure.error;
  }

  /** Records a commit; returns its number for `whenDurable`. Starts a sync if none runs. */
  committed(): number {
    this.#committed += 1;
    this.#startSync();
    return this.#committed;
  }

  /** Resolves once commit `upTo`, and every commit before it, is on disk. */
  whenDurable(upTo: number): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure.error);
    if (upTo <= this.#durable) return Promise.resolve();
    return new Promise((resolve, reject) => this.#waiting.push({ upTo, resolve, reject }));
  }

  /**
   * `value` (a read's result) as it is when nothing committed is waiting for its sync, otherwise
   * a promise of it that resolves once everything committed so far is on disk.
   */
  afterDurable<T>(value: T): T | Promise<T> {
    this.check();
    if (this.#durable === this.#committed) return value;
    return this.whenDurable(this.#committed).then(() => value);
  }

  /** Resolves once every commit made so far is on disk, or a sync has failed. */
  settled(): Promise<void> {
    return this.whenDurable(this.#committed).catch(() => {});
  }

  #startSync(): void {
    if (this.#syncing || this.#failure || this.#durable === this.#committed) return;
    this.#syncing = true;
    this.#syncs += 1;
    const target = this.#committed;
    // Through a promise, so a sync function that throws fails the gate instead of wedging it.
    Promise.resolve()
      .then(this.#sync)
      .then(
        () => {
          this.#syncing = false;
          this.#durable = target;
          this.#release();
          this.#startSync();
        },
        (error: unknown) => {
          this.#syncing = false;
          this.#fail(error);
        },
      );
  }

  #release(): void {
    const due = this.#waiting.filter((waiter) => waiter.upTo <= this.#durable);
    this.#waiting = this.#waiting.filter((waiter) => waiter.upTo > this.#durable);
    for (const waiter of due) waiter.resolve();
  }

  #fail(error: unknown): void {
    let answer: unknown;
    try {
      answer = this.#translate(error);
    } catch {
      answer = error;
    }
    this.#failure = { error: answer };
    for (const waiter of this.#waiting.splice(0)) waiter.reject(answer);
  }
}
