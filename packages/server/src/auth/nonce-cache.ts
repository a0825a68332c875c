/**
 * Owner request nonces seen in the last 120 s (docs/api.md). A signed request is accepted within
 * ±60 s of its timestamp, so remembering each accepted nonce for 120 s from acceptance covers
 * every moment at which a replay could still pass the time check. Only nonces of requests whose
 * signature verified are stored, so the cache grows with the owner's own traffic only; it is
 * bounded anyway.
 *
 * The cache lives in memory, so a restart empties it: a request captured just before a restart
 * could be replayed just after, within its ±60 s. So the cache also remembers when it started
 * (`since`), and owner authentication refuses any request signed before that: such a request
 * cannot be in the cache, so the cache cannot vouch that it is fresh. A client signs with its
 * current clock, so its requests are unaffected, unless its clock is behind the server's by more
 * than the time since the restart: that request gets 401, and a retry moments later passes.
 */

/** The outcome of presenting a nonce. */
export type NonceResult = "fresh" | "replayed" | "full";

/**
 * What owner authentication needs of a nonce store: `NonceCache` (one server, in memory) or
 * `PgNonceStore` (several servers sharing PostgreSQL, pg-nonces.ts). Owner authentication awaits
 * `use`; a store that cannot answer throws (the request is refused, never let through unchecked).
 */
export interface NonceStore {
  /** Requests signed before this (server clock, ms) are refused: the store cannot vouch for them. */
  readonly since: number;
  /** Records `nonce` unless it was seen within the TTL. */
  use(nonce: string, now: number): NonceResult | Promise<NonceResult>;
}

/** How to build a nonce cache. */
export interface NonceCacheOptions {
  /** When the cache started (server clock, ms): requests signed earlier are refused. */
  readonly since: number;
  /** How long a nonce is remembered; default 120 s. */
  readonly ttlMs?: number;
  /** The most nonces remembered at once; default 100,000. */
  readonly maxEntries?: number;
}

/** Remembers nonces for `ttlMs`. */
export class NonceCache implements NonceStore {
  /** When the cache started: it knows nothing of requests signed before. */
  readonly since: number;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #expiry = new Map<string, number>();

  constructor(options: NonceCacheOptions) {
    this.since = options.since;
    this.#ttlMs = options.ttlMs ?? 120_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  /** Records `nonce` unless it was seen within the TTL. */
  use(nonce: string, now: number): NonceResult {
    this.#purge(now);
    const expires = this.#expiry.get(nonce);
    // Still remembered at its expiry instant itself: a request accepted 60 s before its
    // timestamp passes the time check until exactly 120 s after it was accepted.
    if (expires !== undefined && expires >= now) return "replayed";
    if (this.#expiry.size >= this.#maxEntries) return "full";
    this.#expiry.set(nonce, now + this.#ttlMs);
    return "fresh";
  }

  get size(): number {
    return this.#expiry.size;
  }

  #purge(now: number): void {
    // Insertion order is expiry order while the clock moves forward; stop at the first live one.
    for (const [nonce, expires] of this.#expiry) {
      if (expires >= now) break;
      this.#expiry.delete(nonce);
    }
  }
}
