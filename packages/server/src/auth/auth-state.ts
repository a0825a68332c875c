/**
 * The state authentication keeps between requests: owner-request nonces (replay protection) and
 * the failed-authentication limits per client source and per token id. One server keeps it in
 * memory; servers sharing a PostgreSQL database share it there (pg-auth-state.ts), so a replay
 * to another server is refused and N servers do not allow N times the guesses.
 */
import { NonceCache, type NonceStore } from "./nonce-cache.js";
import {
  type AuthLimiter,
  DEFAULT_LIMITS,
  FailureLimiter,
  type LimiterOptions,
} from "./rate-limit.js";

/** Nonces and limits, with their upkeep. */
export interface AuthState {
  readonly nonces: NonceStore;
  readonly sources: AuthLimiter;
  readonly tokens: AuthLimiter;
  /** Drops expired entries (called on the server's 5 s timer); bounded work per call. */
  prune(now: number): Promise<void>;
}

/**
 * In memory, for one server. `since`: now, so owner requests signed before the start are
 * refused (nonce-cache.ts says why).
 */
export function memoryAuthState(since: number, limits: LimiterOptions = DEFAULT_LIMITS): AuthState {
  return {
    nonces: new NonceCache({ since }),
    sources: new FailureLimiter(limits),
    tokens: new FailureLimiter(limits),
    // The in-memory structures purge themselves as they are used.
    prune: async () => {},
  };
}
