/**
 * Owner request nonces seen in the last 120 s (docs/api.md). A signed request is accepted within
 * ±60 s of its timestamp, so remembering each accepted nonce for 120 s from acceptance covers
 * every moment at which a replay could still pass the time check. Only nonces of requests whose
 * signature verified are stored, so the cache grows with the owner's own traffic only; it is
 * bounded anyway.
 */

/** The outcome of presenting a nonce. */
export type NonceResult = "fresh" | "replayed" | "full";

/** Remembers nonces for `ttlMs`. */
export class NonceCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #expiry = new Map<string, number>();

  constructor(ttlMs = 120_000, maxEntries = 100_000) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
  }

  /** Records `nonce` unless it was seen within the TTL. */
  use(nonce: string, now: number): NonceResult {
    this.#purge(now);
    const expires = this.#expiry.get(nonce);
    if (expires !== undefined && expires > now) return "replayed";
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
      if (expires > now) break;
      this.#expiry.delete(nonce);
    }
  }
}
