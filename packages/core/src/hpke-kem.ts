/**
 * DHKEM(X25519, HKDF-SHA256), KEM id 0x0020 (RFC 9180 §4.1, §7.1): DeriveKeyPair, Encap and
 * Decap on WebCrypto's X25519. The curve arithmetic is the platform's; this file only feeds it
 * keys and hands its output to the labeled KDF.
 *
 * Npk = Nsk = Ndh = Nsecret = 32 for this KEM, and Nenc = Npk: `enc` is the ephemeral public key.
 */
import { concatBytes, zeroize } from "./bytes.js";
import { KeyholeError } from "./errors.js";
import { KEM_SUITE_ID, labeledExpand, labeledExtractPrk, webCryptoBytes } from "./hpke-kdf.js";
import type { WebCryptoKey } from "./keys.js";

const subtle = globalThis.crypto.subtle;

/** Npk, Nsk, Ndh and Nsecret of DHKEM(X25519, HKDF-SHA256), in bytes. */
export const X25519_LENGTH = 32;

const EMPTY = new Uint8Array(0);

// RFC 8410 §7: the PKCS#8 PrivateKeyInfo of an X25519 key (OID 1.3.101.110) is this fixed DER
// prefix followed by the 32 key bytes. WebCrypto has no raw import for private keys.
const X25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

// RFC 7748 §4.1: the base point of Curve25519 has u = 9 (32 bytes, little-endian).
const X25519_BASE_POINT = Uint8Array.from([9, ...new Uint8Array(31)]);

/** An X25519 key pair: the serialized public key, and the private key as a WebCrypto object. */
export interface X25519KeyPair {
  /** SerializePublicKey(pk): the 32-byte u-coordinate (RFC 7748 §5). */
  readonly publicKey: Uint8Array;
  /** Non-extractable: its bytes cannot be read back out of the object. */
  readonly privateKey: WebCryptoKey;
}

/**
 * The secret key bytes of DeriveKeyPair(ikm) for X25519 (RFC 9180 §7.1.3):
 *
 *   dkp_prk = LabeledExtract("", "dkp_prk", ikm)
 *   sk      = LabeledExpand(dkp_prk, "sk", "", Nsk)
 *
 * No clamping here: X25519 clamps the scalar itself when it uses it (RFC 7748 §5), and the
 * RFC 9180 vectors list `sk` unclamped. The caller zeroes the result.
 */
async function deriveX25519SecretKey(ikm: Uint8Array): Promise<Uint8Array> {
  const dkpPrk = await labeledExtractPrk(KEM_SUITE_ID, EMPTY, "dkp_prk", ikm);
  return labeledExpand(KEM_SUITE_ID, dkpPrk, "sk", EMPTY, X25519_LENGTH);
}

/**
 * The secret key bytes of DeriveKeyPair(ikm), which production code never reads: the private key
 * lives only inside a non-extractable WebCrypto object. For the known-answer tests, which compare
 * them with the vectors' skRm and skEm; not exported from index.ts. The caller zeroes the result.
 */
export const deriveX25519SecretKeyForTesting = deriveX25519SecretKey;

/** RFC 9180 §7.1.3 DeriveKeyPair(ikm): the same `ikm` always gives the same key pair. */
export async function deriveKeyPair(ikm: Uint8Array): Promise<X25519KeyPair> {
  const secretKey = await deriveX25519SecretKey(ikm);
  const pkcs8 = concatBytes(X25519_PKCS8_PREFIX, secretKey);
  try {
    const privateKey = await subtle.importKey(
      "pkcs8",
      webCryptoBytes(pkcs8),
      { name: "X25519" },
      false,
      ["deriveBits"],
    );
    // pk(sk) = X25519(sk, 9) (RFC 7748 §6.1). Reading the public key from a JWK export instead
    // would need an extractable key, and the JWK would also carry the secret key as `d`, in a
    // string we could never zero.
    const publicKey = await dh(privateKey, X25519_BASE_POINT);
    return { publicKey, privateKey };
  } finally {
    zeroize(secretKey, pkcs8);
  }
}

/**
 * DH(sk, pk) (RFC 9180 §4.1): X25519 of our private key and their serialized public key.
 *
 * RFC 9180 §7.1.4 (after RFC 7748 §6.1): a low-order public key gives the all-zero output, and
 * HPKE must abort then, or a peer could force a shared secret anyone can compute. OpenSSL's
 * X25519 already refuses that result (a WebCrypto `OperationError`), but we check too, so the
 * guarantee does not rest on one runtime's choice.
 */
async function dh(privateKey: WebCryptoKey, publicKey: Uint8Array): Promise<Uint8Array> {
  // DeserializePublicKey: every 32-byte string is a valid X25519 public key encoding.
  if (publicKey.length !== X25519_LENGTH) throw new KeyholeError("invalid_envelope");
  const peer = await subtle.importKey(
    "raw",
    webCryptoBytes(publicKey),
    { name: "X25519" },
    false,
    [],
  );
  const shared = new Uint8Array(
    await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, X25519_LENGTH * 8),
  );
  if (isAllZero(shared)) throw new KeyholeError("invalid_envelope");
  return shared;
}

/** True when every byte is zero. No early exit, so the time does not depend on where. */
function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const byte of bytes) acc |= byte;
  return acc === 0;
}

/**
 * ExtractAndExpand(dh, kem_context) (RFC 9180 §4.1):
 *
 *   eae_prk       = LabeledExtract("", "eae_prk", dh)
 *   shared_secret = LabeledExpand(eae_prk, "shared_secret", kem_context, Nsecret)
 */
async function extractAndExpand(dhOutput: Uint8Array, kemContext: Uint8Array): Promise<Uint8Array> {
  const eaePrk = await labeledExtractPrk(KEM_SUITE_ID, EMPTY, "eae_prk", dhOutput);
  return labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", kemContext, X25519_LENGTH);
}

/**
 * Encap(pkR) (RFC 9180 §4.1), with the ephemeral key pair derived from `ikmE`: in production
 * `ikmE` is 32 fresh random bytes (so GenerateKeyPair() is DeriveKeyPair(random(Nsk))), in the
 * known-answer tests it is the vector's. Returns the shared secret (the caller zeroes it) and
 * enc = SerializePublicKey(pkE).
 */
export async function encap(
  recipientPublicKey: Uint8Array,
  ikmE: Uint8Array,
): Promise<{ sharedSecret: Uint8Array; enc: Uint8Array }> {
  const ephemeral = await deriveKeyPair(ikmE);
  const dhOutput = await dh(ephemeral.privateKey, recipientPublicKey);
  try {
    const enc = ephemeral.publicKey;
    // kem_context = enc ‖ pkRm binds the shared secret to both public keys.
    const kemContext = concatBytes(enc, recipientPublicKey);
    return { sharedSecret: await extractAndExpand(dhOutput, kemContext), enc };
  } finally {
    zeroize(dhOutput);
  }
}

/** Decap(enc, skR) (RFC 9180 §4.1). Returns the shared secret; the caller zeroes it. */
export async function decap(enc: Uint8Array, recipient: X25519KeyPair): Promise<Uint8Array> {
  const dhOutput = await dh(recipient.privateKey, enc);
  try {
    const kemContext = concatBytes(enc, recipient.publicKey);
    return await extractAndExpand(dhOutput, kemContext);
  } finally {
    zeroize(dhOutput);
  }
}
