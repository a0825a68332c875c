/**
 * Load shedding. Past `max` requests in flight, a new request gets `503 unavailable` with
 * `Retry-After` at once, before any authentication, database or crypto work, so a flood cannot
 * queue up unbounded work and memory. Liveness and readiness checks are always admitted: an
 * orchestrator must see a busy server as busy, not dead.
 *
 * The count alone does not catch a flood of cheap requests: an agent read finishes almost
 * synchronously, so 1,000 busy keep-alive connections never hold 256 slots at once (bench/flood.mjs
 * saw not one 503), yet one turn of the event loop then serves a request on every ready
 * connection, hundreds of ms or more. Everything else waits for the next turn: health checks, and
 * new connections, which Node 20 accepts one per turn (libuv 1.45+, libuv/libuv#3696). So a request
 * is also shed once the current turn has been busy for `maxTurnMs` with a flood's worth of
 * requests: the rest of the turn gets cheap 503s and the loop comes round sooner.
 */

/** Paths admitted even when the server is full. */
export const ALWAYS_ADMITTED = new Set(["/healthz", "/readyz"]);

/** Default bound: well above what one SQLite-backed process serves at once. */
export const DEFAULT_MAX_IN_FLIGHT = 256;

/**
 * Default budget of one event-loop turn, in ms: well under an orchestrator's usual 1 s probe
 * timeout, well over what a turn of an unloaded server takes.
 */
export const DEFAULT_MAX_TURN_MS = 100;

/**
 * Requests a turn must have seen before its budget applies: a flood brings hundreds per turn,
 * while a turn with a few requests that ran long (one slow owner request, the process descheduled
 * on a busy machine) is not a flood, and its callers, who do not retry a 503, should be served.
 */
export const MIN_TURN_REQUESTS = 16;

/** Counts requests in flight against a bound, and sheds the rest of an overlong loop turn. */
export class InFlightLimit {
  readonly #max: number;
  readonly #maxTurnMs: number;
  #count = 0;
  /** Requests (health checks aside) seen this turn; null before the first. */
  #turnRequests: number | null = null;
  /** When the loop last came round (its check phase), and its idle time then. */
  #lastCheck = performance.now();
  #idleAtCheck = performance.eventLoopUtilization().idle;

  constructor(max: number = DEFAULT_MAX_IN_FLIGHT, maxTurnMs: number = DEFAULT_MAX_TURN_MS) {
    this.#max = max;
    this.#maxTurnMs = maxTurnMs;
  }

  /** Admits a request (true) or refuses it (false); every admitted request must `release()`. */
  admit(path: string): boolean {
    if (!ALWAYS_ADMITTED.has(path) && (this.#count >= this.#max || this.#turnOver())) return false;
    this.#count++;
    return true;
  }

  /**
   * Whether this turn has run past its budget with a flood's worth of requests. A turn's time
   * counts from the loop's last check phase (setImmediate), less the time it then sat idle
   * waiting for I/O, so it includes the continuations of earlier requests that ran before this
   * one, not a quiet hour before the first request.
   */
  #turnOver(): boolean {
    if (this.#turnRequests === null) {
      this.#turnRequests = 0;
      setImmediate(() => {
        this.#turnRequests = null;
        this.#lastCheck = performance.now();
        this.#idleAtCheck = performance.eventLoopUtilization().idle;
      });
    }
    this.#turnRequests++;
    if (this.#turnRequests <= MIN_TURN_REQUESTS) return false;
    const idle = performance.eventLoopUtilization().idle - this.#idleAtCheck;
    return performance.now() - this.#lastCheck - idle > this.#maxTurnMs;
  }

  release(): void {
    this.#count--;
  }

  get inFlight(): number {
    return this.#count;
  }
}
