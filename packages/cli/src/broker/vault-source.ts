/**
 * Where the broker gets a secret for one call: the vault, through the SDK, which verifies the
 * owner's signature over the value and the allowed hosts before anything is decrypted. Each fetch
 * is an ordinary agent read, so the vault's audit log records it.
 *
 * By default nothing is kept: every proxied call fetches. With a cache TTL the decrypted value is
 * kept that long in one Buffer (zeroed on expiry and on close) and each call gets its own copy,
 * which the proxy zeroes when the call ends. A revoked agent or a rotated value then takes effect
 * only after the TTL: the trade the operator chose with `--cache-ttl`.
 */
import type { SecretInfo } from "@keyhole/sdk";
import type { SecretGrant } from "./proxy.js";
import type { Route } from "./routes.js";

/** The part of the SDK's Vault the broker needs. */
export interface SecretReader {
  use<T>(name: string, fn: (value: Uint8Array, info: SecretInfo) => T | PromiseLike<T>): Promise<T>;
}

/** Hands out one secret per call and forgets everything on close. */
export interface SecretSource {
  get(route: Route): Promise<SecretGrant>;
  close(): void;
}

interface CacheEntry {
  readonly value: Uint8Array;
  readonly allowedHosts: readonly string[];
  readonly timer: ReturnType<typeof setTimeout>;
}

/** A source backed by `reader`; `cacheTtlMs` 0 keeps nothing between calls. */
export function createVaultSecretSource(reader: SecretReader, cacheTtlMs = 0): SecretSource {
  const cache = new Map<string, CacheEntry>();

  function forget(name: string): void {
    const entry = cache.get(name);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    entry.value.fill(0);
    cache.delete(name);
  }

  return {
    async get(route: Route): Promise<SecretGrant> {
      const cached = cache.get(route.secret);
      if (cached !== undefined)
        return { value: cached.value.slice(), allowedHosts: cached.allowedHosts };
      // The SDK zeroes its bytes when the callback returns; this copy belongs to the call.
      const grant = await reader.use(route.secret, (value, info) => ({
        value: value.slice(),
        allowedHosts: info.allowedHosts,
      }));
      if (cacheTtlMs > 0 && !cache.has(route.secret)) {
        const timer = setTimeout(() => forget(route.secret), cacheTtlMs);
        timer.unref();
        cache.set(route.secret, {
          value: grant.value.slice(),
          allowedHosts: grant.allowedHosts,
          timer,
        });
      }
      return grant;
    },
    close(): void {
      for (const name of [...cache.keys()]) forget(name);
    },
  };
}
