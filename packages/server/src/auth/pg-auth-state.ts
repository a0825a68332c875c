/**
 * Authentication state shared by every server on one PostgreSQL database (auth-state.ts):
 * nonces in `auth_nonces`, limits in `auth_limits` (pg-nonces.ts, pg-limiter.ts). Loaded only
 * with `--database-url`.
 */
import type { Sql } from "../store/postgres-db.js";
import type { AuthState } from "./auth-state.js";
import { PgFailureLimiter } from "./pg-limiter.js";
import { PgNonceStore } from "./pg-nonces.js";
import { DEFAULT_LIMITS, type LimiterOptions } from "./rate-limit.js";

/**
 * The shared state on `sql`. `onError` hears of a limiter that fell back to this server's own
 * counts (the database was unreachable or busy); nonces fail closed instead (503).
 */
export function postgresAuthState(
  sql: Sql,
  since: number,
  onError: (error: unknown) => void,
  limits: LimiterOptions = DEFAULT_LIMITS,
): AuthState {
  const nonces = new PgNonceStore(sql, { since });
  const sources = new PgFailureLimiter(sql, { kind: "source", limits, onError });
  const tokens = new PgFailureLimiter(sql, { kind: "token", limits, onError });
  return {
    nonces,
    sources,
    tokens,
    prune: async (now) => {
      await Promise.all([nonces.prune(now), sources.prune(now), tokens.prune(now)]);
    },
  };
}
