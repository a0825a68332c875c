/**
 * HPKE (RFC 9180) for suite 0x01: base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
 * AES-256-GCM (0x0020 / 0x0001 / 0x0002), through `@hpke/core` on WebCrypto. Single-shot: one
 * context seals one DEK.
 */
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { KeyholeError } from "./errors.js";

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** A recipient's X25519 key pair: the raw public key and the private key as a WebCrypto object. */
export interface RecipientKeyPair {
  readonly publicKey: Uint8Array;
  readonly keyPair: Awaited<ReturnType<typeof suite.kem.deriveKeyPair>>;
}

// @hpke/core takes ArrayBuffers. Copy through the Uint8Array constructor: a Node Buffer's
// `slice()` is a view, and its `.buffer` is the whole shared 8 KiB pool, not these bytes.
function ab(bytes: Uint8Array): ArrayBuffer {
  return new Uint8Array(bytes).buffer as ArrayBuffer;
}

/** RFC 9180 §7.1.3 DeriveKeyPair(ikm) for X25519. */
export async function deriveRecipientKeyPair(ikm: Uint8Array): Promise<RecipientKeyPair> {
  const copy = ab(ikm);
  try {
    const keyPair = await suite.kem.deriveKeyPair(copy);
    const publicKey = new Uint8Array(await suite.kem.serializePublicKey(keyPair.publicKey));
    return { publicKey, keyPair };
  } finally {
    new Uint8Array(copy).fill(0);
  }
}

/** Seals `plaintext` to `recipientPublicKey`; returns the encapsulated key (32 bytes) and ciphertext. */
export async function hpkeSeal(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  const publicKey = await suite.kem.deserializePublicKey(ab(recipientPublicKey));
  const sender = await suite.createSenderContext({ recipientPublicKey: publicKey, info: ab(info) });
  const copy = ab(plaintext);
  try {
    const ciphertext = new Uint8Array(await sender.seal(copy, ab(aad)));
    return { enc: new Uint8Array(sender.enc), ciphertext };
  } finally {
    new Uint8Array(copy).fill(0);
  }
}

/** Opens an HPKE ciphertext, or throws the generic `decrypt_failed`. */
export async function hpkeOpen(
  recipient: RecipientKeyPair,
  enc: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  try {
    const context = await suite.createRecipientContext({
      recipientKey: recipient.keyPair,
      enc: ab(enc),
      info: ab(info),
    });
    return new Uint8Array(await context.open(ab(ciphertext), ab(aad)));
  } catch {
    throw new KeyholeError("decrypt_failed");
  }
}
