/**
 * The primitives behind the formats, all from WebCrypto: SHA-256, HKDF-SHA256 (RFC 5869) and
 * Ed25519 (RFC 8032). No primitive is implemented here; this file only adapts byte arrays to
 * WebCrypto's key objects.
 */
import { decodeBase64url } from "./base64url.js";
import { concatBytes, randomBytes, utf8 } from "./bytes.js";
import { KeyholeError } from "./errors.js";

const subtle = globalThis.crypto.subtle;

/** A WebCrypto key object (named without the DOM lib, which this package does not load). */
export type WebCryptoKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>;

/** Every label is namespaced and versioned (FORMATS.md). */
export const LABEL_PREFIX = "keyhole/v1/";

// WebCrypto wants ArrayBuffer-backed views; copying avoids SharedArrayBuffer type issues.
function buf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

/** SHA-256 of `data`. */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest("SHA-256", buf(data)));
}

/** `fpr(pk)`: the first 16 bytes of SHA-256 of the raw public key. */
export async function fingerprint(publicKey: Uint8Array): Promise<Uint8Array> {
  return (await sha256(publicKey)).subarray(0, 16);
}

/** HKDF-SHA256 (RFC 5869) with `length` bytes of output. */
export async function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  const key = await subtle.importKey("raw", buf(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: buf(salt), info: buf(info) },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410 §7): WebCrypto imports no raw private keys.
const ED25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

/** An owner's Ed25519 signing key: the private half never leaves this object. */
export interface SigningKey {
  readonly publicKey: Uint8Array;
  readonly privateKey: WebCryptoKey;
}

/** Imports a 32-byte Ed25519 seed as a non-extractable signing key and computes its public key. */
export async function importSigningKey(seed: Uint8Array): Promise<SigningKey> {
  if (seed.length !== 32) throw new KeyholeError("invalid_envelope");
  const pkcs8 = concatBytes(ED25519_PKCS8_PREFIX, seed);
  try {
    // Extractable once, only to read the public key from the JWK; then re-imported non-extractable.
    const temporary = await subtle.importKey("pkcs8", buf(pkcs8), "Ed25519", true, ["sign"]);
    const jwk = await subtle.exportKey("jwk", temporary);
    const privateKey = await subtle.importKey("pkcs8", buf(pkcs8), "Ed25519", false, ["sign"]);
    return { publicKey: decodeBase64url(jwk.x ?? "", 32), privateKey };
  } finally {
    pkcs8.fill(0);
  }
}

/** A fresh random 32-byte Ed25519 seed. */
export function generateSigningSeed(): Uint8Array {
  return randomBytes(32);
}

/** Ed25519 signature of `message`. */
export async function sign(key: SigningKey, message: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.sign("Ed25519", key.privateKey, buf(message)));
}

/** Verifies an Ed25519 signature; any malformed input is simply `false`. */
export async function verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const key = await subtle.importKey("raw", buf(publicKey), "Ed25519", false, ["verify"]);
    return await subtle.verify("Ed25519", key, buf(signature), buf(message));
  } catch {
    return false;
  }
}

/** `"keyhole/v1/" + name` as bytes. */
export function label(name: string): Uint8Array {
  return utf8(LABEL_PREFIX + name);
}
