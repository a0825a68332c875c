/**
 * HPKE (RFC 9180) for suite 0x01, and nothing more: base mode (no PSK, no sender key),
 * DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (0x0020 / 0x0001 / 0x0002), single-shot
 * (§6.1): one context seals or opens exactly one message, with sequence number 0, and is dropped.
 * The secret export interface is not implemented, as nothing here uses it.
 *
 * The primitives (X25519, HMAC-SHA256, AES-GCM) are WebCrypto's; the KEM is in hpke-kem.ts and
 * the labeled KDF in hpke-kdf.ts. This file is the key schedule (§5.1), the AEAD step (§5.2) and
 * the three functions the rest of Keyhole calls.
 *
 * Zeroization is best effort, and covers only the buffers JavaScript owns: the DH output, the
 * shared secret, the AEAD key and nonce bytes and the labeled copies of secrets are zeroed after
 * use. The PRKs and the AES key are CryptoKey objects, which can only be dropped, not zeroed, and
 * WebCrypto copies every buffer it is given (see webCryptoBytes in hpke-kdf.ts) into memory this
 * code cannot reach.
 */
import { concatBytes, randomBytes, zeroize } from "./bytes.js";
import { KeyholeError } from "./errors.js";
import {
  HPKE_SUITE_ID,
  labeledExpand,
  labeledExtract,
  labeledExtractPrk,
  webCryptoBytes,
} from "./hpke-kdf.js";
import { decap, deriveKeyPair, encap, X25519_LENGTH, type X25519KeyPair } from "./hpke-kem.js";
import type { WebCryptoKey } from "./keys.js";

const subtle = globalThis.crypto.subtle;

/** mode_base (RFC 9180 §5): no PSK, no sender authentication. */
const MODE_BASE = 0x00;
/** Nk and Nn of AES-256-GCM (RFC 9180 §7.3); its tag Nt is 16 bytes. */
const AEAD_KEY_LENGTH = 32;
const AEAD_NONCE_LENGTH = 12;
const AEAD_TAG_BITS = 128;

const EMPTY = new Uint8Array(0);

/**
 * A recipient's X25519 key pair: the raw 32-byte public key, and the private key as a
 * non-extractable WebCrypto object. Derive it once and reuse it for every open.
 */
export type RecipientKeyPair = X25519KeyPair;

/**
 * RFC 9180 §7.1.3 DeriveKeyPair(ikm) for X25519. `ikm` is not modified; zero it yourself.
 *
 * `ikm` SHOULD carry at least Nsk = 32 bytes of entropy (RFC 9180 §4, §7.1.3). Entropy cannot be
 * measured, but length can: anything shorter cannot hold it, so it is refused with
 * `invalid_envelope`, the code importSigningKey (keys.ts) gives a seed of the wrong length.
 * Every Keyhole caller passes exactly 32 bytes.
 */
export async function deriveRecipientKeyPair(ikm: Uint8Array): Promise<RecipientKeyPair> {
  if (ikm.length < X25519_LENGTH) {
    throw new KeyholeError("invalid_envelope", "HPKE key material is shorter than 32 bytes");
  }
  return deriveKeyPair(ikm);
}

/** key_schedule_context = mode ‖ psk_id_hash ‖ info_hash (RFC 9180 §5.1), for mode_base. */
async function keyScheduleContext(info: Uint8Array): Promise<Uint8Array> {
  const pskIdHash = await labeledExtract(HPKE_SUITE_ID, EMPTY, "psk_id_hash", EMPTY);
  const infoHash = await labeledExtract(HPKE_SUITE_ID, EMPTY, "info_hash", info);
  return concatBytes(Uint8Array.of(MODE_BASE), pskIdHash, infoHash);
}

/**
 * KeySchedule<ROLE>(mode_base, shared_secret, info, psk = "", psk_id = "") (RFC 9180 §5.1),
 * without exporter_secret (no export interface here):
 *
 *   psk_id_hash          = LabeledExtract("", "psk_id_hash", psk_id)
 *   info_hash            = LabeledExtract("", "info_hash", info)
 *   key_schedule_context = mode ‖ psk_id_hash ‖ info_hash
 *   secret               = LabeledExtract(shared_secret, "secret", psk)
 *   key                  = LabeledExpand(secret, "key", key_schedule_context, Nk)
 *   base_nonce           = LabeledExpand(secret, "base_nonce", key_schedule_context, Nn)
 *
 * The caller zeroes the result; if the second expand fails, `key` is zeroed here, as no caller
 * ever sees it.
 */
async function keySchedule(
  sharedSecret: Uint8Array,
  info: Uint8Array,
): Promise<{ key: Uint8Array; baseNonce: Uint8Array }> {
  const context = await keyScheduleContext(info);
  const secret = await labeledExtractPrk(HPKE_SUITE_ID, sharedSecret, "secret", EMPTY);
  const key = await labeledExpand(HPKE_SUITE_ID, secret, "key", context, AEAD_KEY_LENGTH);
  let handedOver = false;
  try {
    const baseNonce = await labeledExpand(
      HPKE_SUITE_ID,
      secret,
      "base_nonce",
      context,
      AEAD_NONCE_LENGTH,
    );
    handedOver = true;
    return { key, baseNonce };
  } finally {
    if (!handedOver) zeroize(key);
  }
}

/**
 * {@link keySchedule}, for the known-answer tests only, which compare key and base_nonce with the
 * vector's. Not exported from index.ts. The caller zeroes the result.
 */
export const keyScheduleForTesting = keySchedule;

/** AES-256-GCM's parameters for one seal or open: the nonce, the AAD and the full 128-bit tag. */
function aeadParams(nonce: Uint8Array, aad: Uint8Array): Parameters<typeof subtle.encrypt>[0] {
  return {
    name: "AES-GCM",
    iv: webCryptoBytes(nonce),
    additionalData: webCryptoBytes(aad),
    tagLength: AEAD_TAG_BITS,
  };
}

/**
 * Runs the key schedule and imports its AEAD key, for one message only. ComputeNonce(seq) is
 * base_nonce XOR I2OSP(seq, Nn) (§5.2); a single-shot context only ever uses seq = 0, so the
 * nonce is base_nonce itself, and no context object that could be reused ever exists.
 */
async function singleShotKey(
  sharedSecret: Uint8Array,
  info: Uint8Array,
  usage: "encrypt" | "decrypt",
): Promise<{ key: WebCryptoKey; nonce: Uint8Array }> {
  const { key, baseNonce } = await keySchedule(sharedSecret, info);
  try {
    const aeadKey = await subtle.importKey("raw", webCryptoBytes(key), "AES-GCM", false, [usage]);
    return { key: aeadKey, nonce: baseNonce };
  } catch (error) {
    zeroize(baseNonce);
    throw error;
  } finally {
    zeroize(key);
  }
}

/**
 * SealBase(pkR, info, aad, pt) with the ephemeral key derived from `ikmE`: the body of
 * {@link hpkeSeal}, which passes 32 fresh random bytes.
 */
async function hpkeSealWithEphemeralIkm(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  ikmE: Uint8Array,
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  let encapsulated: { sharedSecret: Uint8Array; enc: Uint8Array };
  try {
    encapsulated = await encap(recipientPublicKey, ikmE);
  } catch {
    // A key of the wrong length, or a low-order point (all-zero DH output, RFC 9180 §7.1.4).
    throw new KeyholeError("invalid_envelope", "the recipient public key is not usable");
  }
  const { sharedSecret, enc } = encapsulated;
  let nonce: Uint8Array | undefined;
  try {
    const sealing = await singleShotKey(sharedSecret, info, "encrypt");
    nonce = sealing.nonce;
    const ciphertext = await subtle.encrypt(
      aeadParams(nonce, aad),
      sealing.key,
      webCryptoBytes(plaintext),
    );
    return { enc, ciphertext: new Uint8Array(ciphertext) };
  } finally {
    zeroize(sharedSecret, nonce);
  }
}

/**
 * {@link hpkeSealWithEphemeralIkm}, for the known-answer tests and the vector generator
 * (scripts/generate-vectors.mjs) only, which need a fixed ephemeral key to compare `enc` and the
 * ciphertext byte for byte: production code calls {@link hpkeSeal}. Not exported from index.ts.
 */
export const hpkeSealWithEphemeralIkmForTesting = hpkeSealWithEphemeralIkm;

/**
 * SealBase(pkR, info, aad, pt) (RFC 9180 §6.1): seals `plaintext` to `recipientPublicKey` with a
 * fresh ephemeral key. Returns enc (32 bytes) and the ciphertext (plaintext length + 16).
 * Throws `invalid_envelope` when the public key is not a usable X25519 key.
 */
export async function hpkeSeal(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  const ikmE = randomBytes(X25519_LENGTH);
  try {
    return await hpkeSealWithEphemeralIkm(recipientPublicKey, info, aad, plaintext, ikmE);
  } finally {
    zeroize(ikmE);
  }
}

/**
 * OpenBase(enc, skR, info, aad, ct) (RFC 9180 §6.1). Any failure (bad enc, low-order point, wrong
 * key, info or AAD, altered ciphertext) is the one generic `decrypt_failed`, which says nothing
 * about which step failed.
 */
export async function hpkeOpen(
  recipient: RecipientKeyPair,
  enc: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  let sharedSecret: Uint8Array | undefined;
  let nonce: Uint8Array | undefined;
  try {
    sharedSecret = await decap(enc, recipient);
    const opened = await singleShotKey(sharedSecret, info, "decrypt");
    nonce = opened.nonce;
    const plaintext = await subtle.decrypt(
      aeadParams(nonce, aad),
      opened.key,
      webCryptoBytes(ciphertext),
    );
    return new Uint8Array(plaintext);
  } catch {
    throw new KeyholeError("decrypt_failed");
  } finally {
    zeroize(sharedSecret, nonce);
  }
}
