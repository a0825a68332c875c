/**
 * Load shedding. Past `max` requests in flight, a new request gets `503 unavailable` with
 * `Retry-After` at once, before any authentication, database or crypto work, so a flood cannot
 * queue up unbounded work and memory. Liveness and readiness checks are always admitted: an
 * orchestrator must see a busy server as busy, not dead; they take no slot, so a flood of them
 * (say, each holding back a declared body) cannot crowd out the API.
 *
 * One source (an IPv4 address or IPv6 /64, http/client-address.ts) holds at most
 * `maxPerSource` slots with requests that carry a body: a single client stalling its requests
 * (headers in, body never sent, until the body deadline of http/body.ts cuts them) cannot shed
 * every other client's requests. Requests without a body cannot stall once admitted, and are not
 * capped per source: a broker or a NAT gateway in front of many agents is one source, and must
 * be able to have more than a few dozen reads in flight.
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
 * Default share of one source: an eighth of the default bound, far above what one honest client
 * (or a CLI run) keeps in flight, so eight stalling sources are needed to fill the server.
 */
export const DEFAULT_MAX_IN_FLIGHT_PER_SOURCE = 32;

/** Frees an admitted request's slot; calling it again does nothing. */
export type Release = () => void;

const NO_SLOT: Release = () => {};

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
  readonly #maxPerSource: number;
  #count = 0;
  /** Slots held by each source that holds any. */
  readonly #bySource = new Map<string, number>();
  /** Requests (health checks aside) seen this turn; null before the first. */
  #turnRequests: number | null = null;
  /** When the loop last came round (its check phase), and its idle time then. */
  #lastCheck = performance.now();
  #idleAtCheck = performance.eventLoopUtilization().idle;

  constructor(
    max: number = DEFAULT_MAX_IN_FLIGHT,
    maxTurnMs: number = DEFAULT_MAX_TURN_MS,
    maxPerSource: number = DEFAULT_MAX_IN_FLIGHT_PER_SOURCE,
  ) {
    this.#max = max;
    this.#maxTurnMs = maxTurnMs;
    this.#maxPerSource = maxPerSource;
  }

  /**
   * Admits a request, returning the function that frees its slot once it is done (a no-op for a
   * health check, which takes none), or refuses it: null. `bodySource` is the source of a request
   * that carries a body (counted against the per-source cap), null for one without.
   */
  admit(path: string, bodySource: string | null = null): Release | null {
    if (ALWAYS_ADMITTED.has(path)) return NO_SLOT;
    const held = bodySource === null ? 0 : (this.#bySource.get(bodySource) ?? 0);
    if (this.#count >= this.#max || held >= this.#maxPerSource || this.#turnOver()) return null;
    this.#count++;
    if (bodySource !== null) this.#bySource.set(bodySource, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#count--;
      if (bodySource === null) return;
      const left = (this.#bySource.get(bodySource) ?? 1) - 1;
      if (left > 0) this.#bySource.set(bodySource, left);
      else this.#bySource.delete(bodySource);
    };
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

  /** Requests holding a slot (health checks hold none). */
  get inFlight(): number {
    return this.#count;
  }

  /** Slots held by `source`. */
  heldBy(source: string): number {
    return this.#bySource.get(source) ?? 0;
  }
}
