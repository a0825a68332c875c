/**
 * Upkeep on a timer against a database that may be slow: a call that finds the previous one
 * still running does nothing rather than piling a second one on top.
 */
export class OneAtATime {
  #running = false;

  /** Runs `fn`, or resolves to `busy` at once while an earlier call still runs. */
  async run<T>(fn: () => Promise<T>, busy: T): Promise<T> {
    if (this.#running) return busy;
    this.#running = true;
    try {
      return await fn();
    } finally {
      this.#running = false;
    }
  }
}
