/**
 * Owner request nonces shared by several servers on one PostgreSQL database (issue 6): a signed
 * owner request accepted by one server is `replayed` on every other, for as long as its
 * timestamp could still pass the ±60 s check anywhere (the reasoning of nonce-cache.ts, with
 * the table in place of the process's memory).
 *
 * - **Atomic.** A nonce is claimed by one `INSERT … ON CONFLICT DO NOTHING RETURNING`: of two
 *   servers presented the same request at once, exactly one gets a row back (`fresh`).
 * - **Expiry.** A row is kept `ttlMs` (120 s) from acceptance, then `pruneGraceMs` (60 s) more
 *   for clocks that differ between servers: a server whose clock is behind the pruning server's
 *   by up to the grace still finds every nonce it could accept a replay of. A row still present
 *   after its expiry answers `replayed` too: a request old enough for that already fails the
 *   timestamp check, and the owner's client never reuses a (random) nonce.
 * - **Bounded.** Rows come only from requests whose owner signature verified. `prune` (on the
 *   server's timer) deletes up to `limit` expired rows per call and counts the rest (up to
 *   `maxEntries`); while that count is at `maxEntries`, `use` answers `full` (the owner gets a
 *   429 and retries). So the table holds at most `maxEntries` rows plus what all servers accept
 *   between two prunes, plus expired rows awaiting pruning.
 * - **Fail closed.** When PostgreSQL cannot answer, `use` throws the coded store error
 *   (`unavailable`, 503, with `retry-after`): the request is refused, never accepted without its
 *   replay check.
 * - `since`: as for `NonceCache`, requests signed before it are refused. Give the server's start
 *   time: during a rolling upgrade, a server still keeping nonces in memory accepts requests this
 *   table never sees, and a replay of one to this server must not pass. (Once every server uses
 *   the table, a restart loses nothing; the start time then costs only a 401 to a client whose
 *   clock is behind, as before.)
 *
 * A nonce is base64url of random bytes and authorises nothing by itself; it is stored as sent.
 */

import type { Sql } from "../store/postgres-db.js";
import { pgStorageError } from "../store/postgres-errors.js";
import type { NonceResult, NonceStore } from "./nonce-cache.js";
import { OneAtATime } from "./one-at-a-time.js";

/** How to build the shared nonce store. */
export interface PgNonceStoreOptions {
  /** When this server started (its clock, ms): requests signed earlier are refused. */
  readonly since: number;
  /** How long a nonce is remembered after acceptance; default 120 s. */
  readonly ttlMs?: number;
  /** The most nonces remembered at once (as counted by `prune`); default 100,000. */
  readonly maxEntries?: number;
  /** How long past its expiry a row is kept, for clocks that differ between servers; 60 s. */
  readonly pruneGraceMs?: number;
}

/** A nonce as owner authentication passes it: base64url (16 bytes make 22 characters). */
const NONCE_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** Remembers owner request nonces in PostgreSQL, for every server on the database. */
export class PgNonceStore implements NonceStore {
  readonly since: number;
  readonly #sql: Sql;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #graceMs: number;
  /** Set by `prune`: the table held `maxEntries` nonces at its last count. */
  #full = false;
  readonly #pruning = new OneAtATime();

  constructor(sql: Sql, options: PgNonceStoreOptions) {
    this.since = options.since;
    this.#sql = sql;
    this.#ttlMs = options.ttlMs ?? 120_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#graceMs = options.pruneGraceMs ?? 60_000;
    if (!Number.isSafeInteger(this.since)) throw new RangeError("since must be a time in ms");
    checkCount("ttlMs", this.#ttlMs, 1);
    checkCount("maxEntries", this.#maxEntries, 1);
    checkCount("pruneGraceMs", this.#graceMs, 0);
  }

  /**
   * Claims `nonce`: `fresh` when no server has it, `replayed` when one has, `full` at the
   * bound. Throws the coded store error when PostgreSQL cannot answer.
   */
  async use(nonce: string, now: number): Promise<NonceResult> {
    if (!NONCE_PATTERN.test(nonce)) throw new RangeError("a nonce is 1 to 128 base64url");
    if (this.#full) return "full";
    try {
      const claimed = await this.#sql`
        INSERT INTO auth_nonces (nonce, expires_at) VALUES (${nonce}, ${now + this.#ttlMs})
        ON CONFLICT (nonce) DO NOTHING RETURNING nonce`;
      return claimed.length === 1 ? "fresh" : "replayed";
    } catch (error) {
      throw pgStorageError(error) ?? error;
    }
  }

  /**
   * Deletes up to `limit` expired nonces, then counts the rest (up to `maxEntries`) for the
   * bound. Resolves to the number deleted (call again soon when it equals `limit`); rejects
   * with the coded store error when PostgreSQL does (the bound keeps its last count). A call
   * while the previous one still runs does nothing and resolves to 0.
   */
  async prune(now: number, limit = 10_000): Promise<number> {
    checkCount("limit", limit, 1);
    return this.#pruning.run(() => this.#prune(now, limit), 0);
  }

  async #prune(now: number, limit: number): Promise<number> {
    const cut = now - this.#graceMs;
    try {
      const deleted = await this.#sql`
        DELETE FROM auth_nonces WHERE expires_at < ${cut} AND nonce IN (
          SELECT nonce FROM auth_nonces WHERE expires_at < ${cut} LIMIT ${limit})`;
      // Counting stops at the bound, so the cost stays bounded however many rows there are.
      const [row] = await this.#sql<{ n: number }[]>`
        SELECT count(*) AS n FROM (SELECT 1 FROM auth_nonces LIMIT ${this.#maxEntries}) AS live`;
      this.#full = Number(row?.n ?? 0) >= this.#maxEntries;
      return deleted.count;
    } catch (error) {
      throw pgStorageError(error) ?? error;
    }
  }
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer of at least ${min}`);
  }
}
