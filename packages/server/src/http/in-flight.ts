/**
 * Load shedding. Past `max` requests in flight, a new request gets `503 unavailable` with
 * `Retry-After` at once, before any authentication, database or crypto work, so a flood cannot
 * queue up unbounded work and memory. Liveness and readiness checks are always admitted: an
 * orchestrator must see a busy server as busy, not dead.
 */

/** Paths admitted even when the server is full. */
export const ALWAYS_ADMITTED = new Set(["/healthz", "/readyz"]);

/** Default bound: well above what one SQLite-backed process serves at once. */
export const DEFAULT_MAX_IN_FLIGHT = 256;

/** Counts requests in flight against a bound. */
export class InFlightLimit {
  readonly #max: number;
  #count = 0;

  constructor(max: number = DEFAULT_MAX_IN_FLIGHT) {
    this.#max = max;
  }

  /** Admits a request (true) or refuses it (false); every admitted request must `release()`. */
  admit(path: string): boolean {
    if (this.#count >= this.#max && !ALWAYS_ADMITTED.has(path)) return false;
    this.#count++;
    return true;
  }

  release(): void {
    this.#count--;
  }

  get inFlight(): number {
    return this.#count;
  }
}
