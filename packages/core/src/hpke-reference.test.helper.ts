/**
 * A second HPKE for suite 0x01 (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
 * AES-256-GCM), for tests only. It shares no code with hpke*.ts: it is written on node:crypto
 * (diffieHellman, createHmac, createCipheriv) straight from the RFC text, so a mistake in one is
 * not repeated in the other. Unlike the production code it takes raw private keys, any sequence
 * number and exposes every intermediate value, so the tests can compare each against the vector.
 */
import { Buffer } from "node:buffer";
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
} from "node:crypto";

const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const EMPTY = new Uint8Array(0);

function i2osp(n: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1, rest = n; i >= 0; i--, rest = Math.floor(rest / 256))
    out[i] = rest % 256;
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

/** HKDF-Extract (RFC 5869 §2.2) with SHA-256. node:crypto takes an empty HMAC key as is. */
function extract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", salt).update(ikm).digest());
}

/** HKDF-Expand (RFC 5869 §2.3) with SHA-256, any length up to 255 blocks. */
function expand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const blocks: Uint8Array[] = [];
  let previous = EMPTY;
  for (let i = 1; blocks.length * 32 < length; i++) {
    previous = new Uint8Array(
      createHmac("sha256", prk).update(previous).update(info).update(Uint8Array.of(i)).digest(),
    );
    blocks.push(previous);
  }
  return concat(...blocks).subarray(0, length);
}

/** RFC 9180 §4 LabeledExtract and LabeledExpand, bound to one suite_id. */
function labeled(suiteId: Uint8Array) {
  const prefix = concat(ascii("HPKE-v1"), suiteId);
  return {
    extract: (salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array =>
      extract(salt, concat(prefix, ascii(label), ikm)),
    expand: (prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array =>
      expand(prk, concat(i2osp(length, 2), prefix, ascii(label), info), length),
  };
}

const kem = labeled(concat(ascii("KEM"), i2osp(0x0020, 2)));
const hpke = labeled(concat(ascii("HPKE"), i2osp(0x0020, 2), i2osp(0x0001, 2), i2osp(0x0002, 2)));

/** X25519(sk, pk) on node:crypto. OpenSSL throws on an all-zero result (RFC 7748 §6.1). */
export function referenceDh(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(
    diffieHellman({
      privateKey: createPrivateKey({
        key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]),
        format: "der",
        type: "pkcs8",
      }),
      publicKey: createPublicKey({
        key: Buffer.concat([X25519_SPKI_PREFIX, publicKey]),
        format: "der",
        type: "spki",
      }),
    }),
  );
}

/** RFC 9180 §7.1.3 DeriveKeyPair(ikm) for X25519: the raw secret and public keys. */
export function referenceDeriveKeyPair(ikm: Uint8Array): { sk: Uint8Array; pk: Uint8Array } {
  const dkpPrk = kem.extract(EMPTY, "dkp_prk", ikm);
  const sk = kem.expand(dkpPrk, "sk", EMPTY, 32);
  return { sk, pk: referencePublicKey(sk) };
}

/** pk(sk), read from node:crypto's SPKI encoding of the public key. */
function referencePublicKey(sk: Uint8Array): Uint8Array {
  const privateKey = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, sk]),
    format: "der",
    type: "pkcs8",
  });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

/** RFC 9180 §4.1 ExtractAndExpand, with kem_context = enc ‖ pkRm. */
export function referenceSharedSecret(
  dh: Uint8Array,
  enc: Uint8Array,
  pkR: Uint8Array,
): Uint8Array {
  const eaePrk = kem.extract(EMPTY, "eae_prk", dh);
  return kem.expand(eaePrk, "shared_secret", concat(enc, pkR), 32);
}

/** RFC 9180 §5.1 KeySchedule in mode_base (psk and psk_id empty), every output. */
export function referenceKeySchedule(sharedSecret: Uint8Array, info: Uint8Array) {
  const pskIdHash = hpke.extract(EMPTY, "psk_id_hash", EMPTY);
  const infoHash = hpke.extract(EMPTY, "info_hash", info);
  const context = concat(Uint8Array.of(0x00), pskIdHash, infoHash);
  const secret = hpke.extract(sharedSecret, "secret", EMPTY);
  return {
    context,
    secret,
    key: hpke.expand(secret, "key", context, 32),
    baseNonce: hpke.expand(secret, "base_nonce", context, 12),
    exporterSecret: hpke.expand(secret, "exp", context, 32),
  };
}

/** RFC 9180 §5.2 ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn). */
export function referenceNonce(baseNonce: Uint8Array, seq: number): Uint8Array {
  const seqBytes = i2osp(seq, 12);
  return baseNonce.map((byte, i) => byte ^ (seqBytes[i] as number));
}

/** AES-256-GCM seal: ciphertext ‖ 16-byte tag. */
export function referenceAeadSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  pt: Uint8Array,
): Uint8Array {
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(aad);
  return concat(cipher.update(pt), cipher.final(), cipher.getAuthTag());
}

/**
 * SealBase with the ephemeral key derived from `ikmE`, the message sealed at sequence number
 * `seq` of that context (0 for single-shot).
 */
export function referenceSeal(
  pkR: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  pt: Uint8Array,
  ikmE: Uint8Array,
  seq = 0,
): { enc: Uint8Array; ct: Uint8Array } {
  const ephemeral = referenceDeriveKeyPair(ikmE);
  const sharedSecret = referenceSharedSecret(referenceDh(ephemeral.sk, pkR), ephemeral.pk, pkR);
  const { key, baseNonce } = referenceKeySchedule(sharedSecret, info);
  return { enc: ephemeral.pk, ct: referenceAeadSeal(key, referenceNonce(baseNonce, seq), aad, pt) };
}

/** OpenBase, single-shot (seq 0), with the recipient's raw secret key. Throws on any failure. */
export function referenceOpen(
  skR: Uint8Array,
  enc: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
): Uint8Array {
  const pkR = referencePublicKey(skR);
  const sharedSecret = referenceSharedSecret(referenceDh(skR, enc), enc, pkR);
  const { key, baseNonce } = referenceKeySchedule(sharedSecret, info);
  const decipher = createDecipheriv("aes-256-gcm", key, baseNonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(ct.subarray(ct.length - 16));
  return concat(decipher.update(ct.subarray(0, ct.length - 16)), decipher.final());
}
