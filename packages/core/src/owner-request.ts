/**
 * Signed owner requests (docs/api.md "Authentication"). The server holds no owner password:
 * each request carries an Ed25519 signature over the method, path, time, a nonce and the body
 * hash, so a captured request cannot be replayed after its window or changed in flight.
 *
 *   Authorization: Keyhole-Owner <ts_ms>.<b64u nonce(16)>.<b64u sig(64)>
 *   msg = LP("keyhole/v1/owner-request") ‖ LP(vault_id) ‖ LP(METHOD) ‖ LP(path incl. query)
 *         ‖ u64(ts_ms) ‖ LP(nonce) ‖ SHA-256(body)
 */
import { encodeBase64url, tryDecodeBase64url } from "./base64url.js";
import { concatBytes, lp, u64 } from "./bytes.js";

/** What an owner request signature covers. */
export interface OwnerRequest {
  readonly vaultId: string;
  readonly method: string;
  readonly pathWithQuery: string;
  readonly timestamp: number;
  readonly nonce: Uint8Array;
  /** SHA-256 of the raw body bytes (of the empty string when there is no body). */
  readonly bodyHash: Uint8Array;
}

/** The window in which a signed owner request is accepted, either side of the server's clock. */
export const OWNER_REQUEST_WINDOW_MS = 60_000;

/** The bytes an owner request signature covers. */
export function encodeOwnerRequestMessage(request: OwnerRequest): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/owner-request"),
    lp(request.vaultId),
    lp(request.method.toUpperCase()),
    lp(request.pathWithQuery),
    u64(request.timestamp),
    lp(request.nonce),
    request.bodyHash,
  );
}

/** The `Authorization` header value of a signed owner request. */
export function formatOwnerAuthorization(
  timestamp: number,
  nonce: Uint8Array,
  signature: Uint8Array,
): string {
  return `Keyhole-Owner ${timestamp}.${encodeBase64url(nonce)}.${encodeBase64url(signature)}`;
}

/** Parses an owner `Authorization` header, or returns null when it is not one. */
export function parseOwnerAuthorization(
  header: string,
): { timestamp: number; nonce: Uint8Array; signature: Uint8Array } | null {
  if (typeof header !== "string" || !header.startsWith("Keyhole-Owner ")) return null;
  const parts = header.slice("Keyhole-Owner ".length).split(".");
  if (parts.length !== 3) return null;
  const [ts, nonceText, sigText] = parts as [string, string, string];
  if (!/^[1-9][0-9]{0,15}$/.test(ts)) return null;
  const timestamp = Number(ts);
  const nonce = tryDecodeBase64url(nonceText);
  const signature = tryDecodeBase64url(sigText);
  if (!Number.isSafeInteger(timestamp) || nonce?.length !== 16 || signature?.length !== 64) {
    return null;
  }
  return { timestamp, nonce, signature };
}

/**
 * Proof of possession for `POST /v1/init`:
 * LP("keyhole/v1/init") ‖ LP(vault_id) ‖ LP(bootstrap_code) ‖ LP(owner_sign_pk) ‖ LP(owner_enc_pk).
 */
export function encodeInitProofMessage(
  vaultId: string,
  bootstrapCode: string,
  ownerSignPublicKey: Uint8Array,
  ownerEncPublicKey: Uint8Array,
): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/init"),
    lp(vaultId),
    lp(bootstrapCode),
    lp(ownerSignPublicKey),
    lp(ownerEncPublicKey),
  );
}
