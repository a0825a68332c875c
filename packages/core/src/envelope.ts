/**
 * The secret value envelope `KHS1` (FORMATS.md):
 *
 *   "KHS1" ‖ suite(1) ‖ dek_id[16] ‖ nonce[12] ‖ ciphertext‖tag
 *   AAD = LP("keyhole/v1/secret-value") ‖ LP(vault_id) ‖ LP(secret_id) ‖ u64(version) ‖ LP(dek_id)
 *
 * Each version gets a fresh random 256-bit DEK used for exactly one AES-256-GCM encryption. The
 * reader rebuilds the AAD from what it asked for, so a value moved to another secret or version
 * does not open. Every failure is the same `invalid_envelope` or `decrypt_failed`.
 */
import { concatBytes, lp, randomBytes, u64, utf8, zeroize } from "./bytes.js";
import { KeyholeError } from "./errors.js";
import type { WebCryptoKey } from "./keys.js";

const subtle = globalThis.crypto.subtle;

/** The only suite accepted today; 0x02 (post-quantum hybrid) is reserved and rejected. */
export const SUITE_V1 = 0x01;
export const VALUE_MAGIC = utf8("KHS1");
export const DEK_LENGTH = 32;
export const DEK_ID_LENGTH = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const HEADER_LENGTH = 4 + 1 + DEK_ID_LENGTH + NONCE_LENGTH;

/** Which value of which secret an envelope or wrap belongs to. */
export interface SecretVersionRef {
  readonly vaultId: string;
  readonly secretId: string;
  readonly version: number;
}

/** The parts of a well-formed `KHS1` envelope. */
export interface ValueEnvelope {
  readonly dekId: Uint8Array;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** AAD of a value: binds it to vault, secret, version and DEK. */
export function encodeValueAad(ref: SecretVersionRef, dekId: Uint8Array): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/secret-value"),
    lp(ref.vaultId),
    lp(ref.secretId),
    u64(ref.version),
    lp(dekId),
  );
}

/** Magic and suite are checked before anything else; every failure is `invalid_envelope`. */
export function parseValueEnvelope(bytes: Uint8Array): ValueEnvelope {
  if (!(bytes instanceof Uint8Array) || bytes.length < HEADER_LENGTH + TAG_LENGTH) {
    throw new KeyholeError("invalid_envelope");
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== VALUE_MAGIC[i]) throw new KeyholeError("invalid_envelope");
  }
  if (bytes[4] !== SUITE_V1) throw new KeyholeError("invalid_envelope");
  return {
    dekId: bytes.slice(5, 5 + DEK_ID_LENGTH),
    nonce: bytes.slice(5 + DEK_ID_LENGTH, HEADER_LENGTH),
    ciphertext: bytes.slice(HEADER_LENGTH),
  };
}

/**
 * Encrypts one value under a fresh DEK. The caller wraps the returned DEK for each recipient and
 * then zeroes it.
 */
export async function sealValue(
  ref: SecretVersionRef,
  value: Uint8Array,
): Promise<{ envelope: Uint8Array; dek: Uint8Array; dekId: Uint8Array }> {
  const dek = randomBytes(DEK_LENGTH);
  const dekId = randomBytes(DEK_ID_LENGTH);
  const nonce = randomBytes(NONCE_LENGTH);
  const key = await importDek(dek);
  const ciphertext = new Uint8Array(
    await subtle.encrypt(
      { name: "AES-GCM", iv: nonce, additionalData: new Uint8Array(encodeValueAad(ref, dekId)) },
      key,
      new Uint8Array(value),
    ),
  );
  const envelope = concatBytes(VALUE_MAGIC, Uint8Array.of(SUITE_V1), dekId, nonce, ciphertext);
  return { envelope, dek, dekId };
}

/** Decrypts a `KHS1` envelope with its DEK, or throws the generic `decrypt_failed`. */
export async function openValue(
  ref: SecretVersionRef,
  dek: Uint8Array,
  envelopeBytes: Uint8Array,
): Promise<Uint8Array> {
  const envelope = parseValueEnvelope(envelopeBytes);
  try {
    const key = await importDek(dek);
    return new Uint8Array(
      await subtle.decrypt(
        {
          name: "AES-GCM",
          iv: new Uint8Array(envelope.nonce),
          additionalData: new Uint8Array(encodeValueAad(ref, envelope.dekId)),
        },
        key,
        new Uint8Array(envelope.ciphertext),
      ),
    );
  } catch {
    throw new KeyholeError("decrypt_failed");
  }
}

async function importDek(dek: Uint8Array): Promise<WebCryptoKey> {
  if (dek.length !== DEK_LENGTH) throw new KeyholeError("decrypt_failed");
  const copy = new Uint8Array(dek);
  try {
    return await subtle.importKey("raw", copy, "AES-GCM", false, ["encrypt", "decrypt"]);
  } finally {
    zeroize(copy);
  }
}
