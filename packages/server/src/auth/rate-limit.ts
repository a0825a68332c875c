/**
 * In-memory limits on failed authentication (SECURITY-TESTS #13). Failures are counted per key
 * (a client source, or a token id) in a sliding window; more than `maxFailures` in `windowMs`
 * blocks the key for `baseBlockMs`, doubling on each repeat up to `maxBlockMs`, and the strike
 * count resets after `quietMs` without failures. Memory is bounded: past `maxKeys` the oldest
 * key is forgotten.
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

interface KeyState {
  failures: number[];
  blockedUntil: number;
  strikes: number;
  lastFailure: number;
}

/** Counts failures per key and blocks keys that fail too often. */
export class FailureLimiter {
  readonly #options: LimiterOptions;
  readonly #keys = new Map<string, KeyState>();

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
    const o = this.#options;
    let state = this.#keys.get(key);
    if (state) {
      this.#keys.delete(key); // re-insert: the map stays ordered by last activity
    } else {
      state = { failures: [], blockedUntil: 0, strikes: 0, lastFailure: now };
      while (this.#keys.size >= o.maxKeys) {
        const oldest = this.#keys.keys().next().value;
        if (oldest === undefined) break;
        this.#keys.delete(oldest);
      }
    }
    this.#keys.set(key, state);
    if (now - state.lastFailure > o.quietMs) state.strikes = 0;
    state.lastFailure = now;
    if (state.blockedUntil > now) return state.blockedUntil - now;
    state.failures = state.failures.filter((t) => now - t < o.windowMs);
    state.failures.push(now);
    if (state.failures.length > o.maxFailures) {
      state.failures = [];
      state.blockedUntil = now + Math.min(o.baseBlockMs * 2 ** state.strikes, o.maxBlockMs);
      state.strikes += 1;
      return state.blockedUntil - now;
    }
    return 0;
  }

  /** Forgets a key's failures (after it authenticated successfully). */
  forget(key: string): void {
    this.#keys.delete(key);
  }
}

/** `retry-after` seconds for a block of `ms` milliseconds (at least 1). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
