/**
 * Authentication state several servers share (issue 6), so that limits and replay checks hold
 * across servers rather than per process:
 *
 * - `auth_limits`: the failed-authentication limiter's state per (kind, key), kind `source` (a
 *   client IPv4 address or IPv6 /64) or `token` (a token id, base64url: a public identifier,
 *   never an auth key). Each failure locks its row and applies the same transition as the
 *   in-memory limiter (auth/pg-limiter.ts). `expires_at` is when the row stops mattering (not
 *   blocked, failures out of the window, strikes reset): pruning deletes it after that.
 * - `auth_nonces`: owner request nonces (base64url of random bytes; a nonce alone authorises
 *   nothing), each inserted once (`ON CONFLICT DO NOTHING`) and pruned after `expires_at`.
 *
 * Ordinary (logged) tables on purpose: an unlogged table is emptied by a crash and missing on a
 * promoted standby, which would reopen the replay window and reset the limits.
 */
export const name = "shared-auth-state";

export const sql = `
CREATE TABLE auth_limits (
  kind TEXT NOT NULL CHECK (kind IN ('source', 'token')),
  key TEXT COLLATE "C" NOT NULL CHECK (length(key) <= 256),
  failures JSONB NOT NULL
    CHECK (jsonb_typeof(failures) = 'array' AND jsonb_array_length(failures) <= 10000),
  blocked_until BIGINT NOT NULL,
  strikes INTEGER NOT NULL CHECK (strikes >= 0),
  last_failure BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (kind, key)
);
-- Pruning: rows that stopped mattering, then the least recently failing beyond the bound.
CREATE INDEX auth_limits_expiry ON auth_limits (kind, expires_at);
CREATE INDEX auth_limits_recent ON auth_limits (kind, last_failure);

CREATE TABLE auth_nonces (
  nonce TEXT COLLATE "C" PRIMARY KEY CHECK (length(nonce) BETWEEN 1 AND 128),
  expires_at BIGINT NOT NULL
);
CREATE INDEX auth_nonces_expiry ON auth_nonces (expires_at);
`;
