/**
 * The KDF of our one HPKE suite: HKDF-SHA256 (RFC 5869, KDF id 0x0001) and RFC 9180 §4's labeled
 * forms of it, `LabeledExtract` and `LabeledExpand`.
 *
 * WebCrypto's HKDF runs Extract and Expand as one step, but RFC 9180 uses them separately (the
 * key schedule expands one PRK twice, and DHKEM extracts with a label the expand does not repeat),
 * so both are written out here on WebCrypto's HMAC-SHA256. SHA-256 and HMAC themselves come from
 * the platform; this file only arranges their inputs as the RFCs define them.
 */
import { concatBytes, utf8, zeroize } from "./bytes.js";
import type { WebCryptoKey } from "./keys.js";

const subtle = globalThis.crypto.subtle;

/** Nh: the output length of SHA-256, in bytes. */
export const HASH_LENGTH = 32;

/** The KEM, KDF and AEAD ids of suite 0x01 (RFC 9180 §7). */
export const KEM_ID = 0x0020;
export const KDF_ID = 0x0001;
export const AEAD_ID = 0x0002;

/** I2OSP(n, 2): a 16-bit big-endian integer (RFC 8017 §4.1), as RFC 9180 §3 uses it. */
export function i2osp2(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new RangeError("I2OSP(n, 2) out of range");
  return Uint8Array.of(n >> 8, n & 0xff);
}

/** suite_id inside the KEM (RFC 9180 §4.1): "KEM" ‖ I2OSP(kem_id, 2). */
export const KEM_SUITE_ID = concatBytes(utf8("KEM"), i2osp2(KEM_ID));

/** suite_id of the key schedule (RFC 9180 §5.1): "HPKE" ‖ kem_id ‖ kdf_id ‖ aead_id. */
export const HPKE_SUITE_ID = concatBytes(
  utf8("HPKE"),
  i2osp2(KEM_ID),
  i2osp2(KDF_ID),
  i2osp2(AEAD_ID),
);

const VERSION_LABEL = utf8("HPKE-v1");

// RFC 5869 §2.2: a salt that is "not provided" is HashLen zero bytes. RFC 9180 passes the empty
// string, and HMAC (RFC 2104 §2) pads any key shorter than the block with zeros, so the empty
// salt and this one are the same HMAC key. We must spell it out: WebCrypto refuses to import a
// zero-length HMAC key.
const EMPTY_SALT = new Uint8Array(HASH_LENGTH);

/**
 * The same bytes, typed as WebCrypto wants them. TypeScript allows a `Uint8Array` to sit on a
 * SharedArrayBuffer, which WebCrypto refuses with a TypeError (checked on Node 20), so this is
 * only a type assertion, and the assertion itself copies nothing. WebCrypto does copy: the Web
 * Cryptography API's steps for importKey, sign, encrypt and the rest begin by getting a copy of
 * the bytes held by each buffer argument, and those copies belong to the platform, where
 * {@link zeroize} cannot reach them.
 */
export function webCryptoBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}

/**
 * Imports bytes as a non-extractable HMAC-SHA256 key. The key object keeps its own copy, so the
 * caller can zero `key` as soon as this resolves.
 */
function importHmacKey(key: Uint8Array): Promise<WebCryptoKey> {
  return subtle.importKey("raw", webCryptoBytes(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

async function hmacSha256(key: WebCryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.sign("HMAC", key, webCryptoBytes(data)));
}

/**
 * HKDF-Extract(salt, IKM) (RFC 5869 §2.2): the PRK, HashLen bytes. The caller zeroes it. This is
 * the one place the empty salt becomes {@link EMPTY_SALT}; the key is imported anew on every call.
 */
export async function extract(salt: Uint8Array, ikm: Uint8Array): Promise<Uint8Array> {
  return hmacSha256(await importHmacKey(salt.length === 0 ? EMPTY_SALT : salt), ikm);
}

/**
 * HKDF-Expand(PRK, info, L) (RFC 5869 §2.3) for L ≤ HashLen, the only lengths HPKE asks of it in
 * our suite (32-byte secrets and keys, the 12-byte nonce). The output is then the first L bytes
 * of T(1) = HMAC(PRK, info ‖ 0x01); longer outputs are refused rather than implemented unused.
 * `prk` is the PRK imported with {@link importHmacKey}, so one PRK can be expanded twice (key and
 * base_nonce) from one import.
 */
export async function expand(
  prk: WebCryptoKey,
  info: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  if (!Number.isInteger(length) || length < 1 || length > HASH_LENGTH) {
    throw new RangeError("HKDF-Expand length out of range");
  }
  const block = await hmacSha256(prk, concatBytes(info, Uint8Array.of(0x01)));
  const okm = block.slice(0, length);
  zeroize(block);
  return okm;
}

/**
 * LabeledExtract(salt, label, ikm) (RFC 9180 §4):
 * Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm). The labeled copy of `ikm` is zeroed after.
 */
export async function labeledExtract(
  suiteId: Uint8Array,
  salt: Uint8Array,
  label: string,
  ikm: Uint8Array,
): Promise<Uint8Array> {
  const labeledIkm = concatBytes(VERSION_LABEL, suiteId, utf8(label), ikm);
  try {
    return await extract(salt, labeledIkm);
  } finally {
    zeroize(labeledIkm);
  }
}

/**
 * LabeledExpand(prk, label, info, L) (RFC 9180 §4):
 * Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L).
 */
export function labeledExpand(
  suiteId: Uint8Array,
  prk: WebCryptoKey,
  label: string,
  info: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  const labeledInfo = concatBytes(i2osp2(length), VERSION_LABEL, suiteId, utf8(label), info);
  return expand(prk, labeledInfo, length);
}

/**
 * LabeledExtract for a PRK that is only ever expanded (dkp_prk, eae_prk, secret): returns it
 * imported as an HMAC key, ready for {@link labeledExpand}, and zeroes its bytes at once.
 */
export async function labeledExtractPrk(
  suiteId: Uint8Array,
  salt: Uint8Array,
  label: string,
  ikm: Uint8Array,
): Promise<WebCryptoKey> {
  const prk = await labeledExtract(suiteId, salt, label, ikm);
  try {
    return await importHmacKey(prk);
  } finally {
    zeroize(prk);
  }
}
