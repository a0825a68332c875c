/**
 * In-memory limits on failed authentication (SECURITY-TESTS #13). Failures are counted per key
 * (a client source, or a token id) in a sliding window; more than `maxFailures` in `windowMs`
 * blocks the key for `baseBlockMs`, doubling on each repeat up to `maxBlockMs`, and the strike
 * count resets after `quietMs` without failures. Memory is bounded: past `maxKeys` the oldest
 * key is forgotten.
 *
 * The rules live in one pure function, `nextLimiterState`: `FailureLimiter` applies it to state
 * in memory (one server), `PgFailureLimiter` (pg-limiter.ts) to rows several servers share.
 *
 * What "blocked" means is decided by the caller (see `gate.ts`): a blocked key turns further
 * *failures* into 429, and gets cheap work refused early, but a request that presents valid
 * credentials is still verified and served, so no one is locked out by someone else's failures.
 */

/** Tuning of a limiter. */
export interface LimiterOptions {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly baseBlockMs: number;
  readonly maxBlockMs: number;
  readonly quietMs: number;
  readonly maxKeys: number;
}

/** Defaults: more than 10 failures in 60 s → blocked 60 s, then 120 s, … up to an hour. */
export const DEFAULT_LIMITS: LimiterOptions = {
  maxFailures: 10,
  windowMs: 60_000,
  baseBlockMs: 60_000,
  maxBlockMs: 3_600_000,
  quietMs: 15 * 60_000,
  maxKeys: 10_000,
};

/**
 * One key's state: what the in-memory limiter keeps per key, and what the shared (PostgreSQL)
 * limiter keeps in one row (pg-limiter.ts). Both move it with `nextLimiterState`, so one server
 * and several servers count alike.
 */
export interface LimiterState {
  /** Times of the failures in the current window; emptied when they cause a block. */
  readonly failures: readonly number[];
  readonly blockedUntil: number;
  /** Blocks so far; the next lasts `baseBlockMs * 2^strikes` (capped). */
  readonly strikes: number;
  readonly lastFailure: number;
}

/** The state after one more failure at `now`, and the block then in force (ms, 0 for none). */
export function nextLimiterState(
  state: LimiterState | undefined,
  now: number,
  o: LimiterOptions,
): { state: LimiterState; blockedMs: number } {
  const prior = state ?? { failures: [], blockedUntil: 0, strikes: 0, lastFailure: now };
  const strikes = now - prior.lastFailure > o.quietMs ? 0 : prior.strikes;
  // A failure while blocked extends nothing and is not counted, but keeps the strikes alive.
  if (prior.blockedUntil > now) {
    return {
      state: { ...prior, strikes, lastFailure: now },
      blockedMs: prior.blockedUntil - now,
    };
  }
  const failures = prior.failures.filter((t) => now - t < o.windowMs);
  failures.push(now);
  if (failures.length > o.maxFailures) {
    const blockedUntil = now + Math.min(o.baseBlockMs * 2 ** strikes, o.maxBlockMs);
    return {
      state: { failures: [], blockedUntil, strikes: strikes + 1, lastFailure: now },
      blockedMs: blockedUntil - now,
    };
  }
  return {
    state: { failures, blockedUntil: prior.blockedUntil, strikes, lastFailure: now },
    blockedMs: 0,
  };
}

/**
 * When `state` stops mattering: at any later time it is not blocked, its failures have left the
 * window and its strikes have reset, so the next failure finds it as if the key were new. A
 * shared row can be deleted after that.
 */
export function limiterStateExpiry(state: LimiterState, o: LimiterOptions): number {
  return Math.max(state.lastFailure + Math.max(o.quietMs, o.windowMs), state.blockedUntil);
}

/**
 * What the gate needs of a failed-authentication limiter: `FailureLimiter` (one server, in
 * memory, synchronous) or `PgFailureLimiter` (several servers sharing PostgreSQL). The gate
 * awaits every call, so either fits.
 */
export interface AuthLimiter {
  /** Records one failure; resolves to the block now in force (ms, 0 for none). */
  recordFailure(key: string, now: number): number | Promise<number>;
  /** Milliseconds until `key` is unblocked; 0 when it is not blocked. */
  blockedFor(key: string, now: number): number | Promise<number>;
  /** Forgets a key's failures (after it authenticated successfully). */
  forget(key: string): void | Promise<void>;
}

/** Counts failures per key and blocks keys that fail too often. */
export class FailureLimiter implements AuthLimiter {
  readonly #options: LimiterOptions;
  readonly #keys = new Map<string, LimiterState>();

  constructor(options: LimiterOptions = DEFAULT_LIMITS) {
    this.#options = options;
  }

  /** Milliseconds until `key` is unblocked; 0 when it is not blocked. */
  blockedFor(key: string, now: number): number {
    const state = this.#keys.get(key);
    return state && state.blockedUntil > now ? state.blockedUntil - now : 0;
  }

  /** Records one failure; returns the block now in force (ms, 0 for none). */
  recordFailure(key: string, now: number): number {
    const prior = this.#keys.get(key);
    if (prior) {
      this.#keys.delete(key); // re-insert: the map stays ordered by last activity
    } else {
      while (this.#keys.size >= this.#options.maxKeys) {
        const oldest = this.#keys.keys().next().value;
        if (oldest === undefined) break;
        this.#keys.delete(oldest);
      }
    }
    const { state, blockedMs } = nextLimiterState(prior, now, this.#options);
    this.#keys.set(key, state);
    return blockedMs;
  }

  /** Forgets a key's failures (after it authenticated successfully). */
  forget(key: string): void {
    this.#keys.delete(key);
  }

  /** True while the limiter holds state for `key` (it failed and was not forgotten or evicted). */
  tracks(key: string): boolean {
    return this.#keys.has(key);
  }
}

/** `retry-after` seconds for a block of `ms` milliseconds (at least 1). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
