/**
 * Owner authentication (docs/api.md): every owner request carries
 * `Authorization: Keyhole-Owner <ts_ms>.<b64u nonce>.<b64u sig>`, an Ed25519 signature over the
 * vault id, method, raw request target, timestamp, nonce and body hash. The server accepts
 * `|now − ts| ≤ 60 s` and each nonce once within 120 s, and refuses a request signed before the
 * server started (its nonce cache, in memory, cannot know it: see nonce-cache.ts). The nonce store
 * is in memory (one server) or shared in PostgreSQL (several servers, pg-nonces.ts); a store
 * that cannot answer throws, so a request is never accepted without its replay check.
 */
import { createHash } from "node:crypto";
import {
  encodeBase64url,
  encodeOwnerRequestMessage,
  OWNER_REQUEST_WINDOW_MS,
  parseOwnerAuthorization,
  verify,
} from "@keyhole/core";
import type { NonceStore } from "./nonce-cache.js";

/** Why an owner signature failed (for the audit log only). */
export type OwnerAuthFailure =
  | "malformed"
  | "stale_timestamp"
  /** Signed before this server process started: a replay across a restart, or a slow clock. */
  | "signed_before_start"
  | "bad_signature"
  | "replayed_nonce";

/** The outcome of checking an owner signature; `busy` means the nonce cache is full. */
export type OwnerAuthResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: OwnerAuthFailure | "busy" };

/** What the signature covers, as the server saw the request. */
export interface OwnerRequestFacts {
  readonly vaultId: string;
  readonly ownerSignPk: Uint8Array;
  readonly method: string;
  readonly target: string;
  readonly body: Uint8Array;
  readonly now: number;
}

/** Checks an owner `Authorization` header value against the request it came with. */
export async function authenticateOwner(
  header: string,
  request: OwnerRequestFacts,
  nonces: NonceStore,
): Promise<OwnerAuthResult> {
  const parsed = parseOwnerAuthorization(header);
  if (parsed === null) return { ok: false, reason: "malformed" };
  if (Math.abs(request.now - parsed.timestamp) > OWNER_REQUEST_WINDOW_MS) {
    return { ok: false, reason: "stale_timestamp" };
  }
  if (parsed.timestamp < nonces.since) return { ok: false, reason: "signed_before_start" };
  const message = encodeOwnerRequestMessage({
    vaultId: request.vaultId,
    method: request.method,
    pathWithQuery: request.target,
    timestamp: parsed.timestamp,
    nonce: parsed.nonce,
    bodyHash: new Uint8Array(createHash("sha256").update(request.body).digest()),
  });
  if (!(await verify(request.ownerSignPk, message, parsed.signature))) {
    return { ok: false, reason: "bad_signature" };
  }
  // Only after the signature verified, so nobody else can fill the cache.
  const nonce = await nonces.use(encodeBase64url(parsed.nonce), request.now);
  if (nonce === "replayed") return { ok: false, reason: "replayed_nonce" };
  if (nonce === "full") return { ok: false, reason: "busy" };
  return { ok: true };
}
