/**
 * The DEK wrap `KHW1`, one per recipient (FORMATS.md):
 *
 *   "KHW1" ‖ suite(1) ‖ recipient_fpr[16] ‖ enc[32] ‖ ct[48]          exactly 101 bytes
 *   info = "keyhole/v1/dek-wrap"
 *   aad  = LP("keyhole/v1/dek-wrap") ‖ LP(vault_id) ‖ LP(secret_id) ‖ u64(version) ‖ LP(dek_id)
 *          ‖ LP(recipient_id) ‖ LP(recipient_pk)
 *
 * Binding the recipient's id and public key into the AAD means a wrap cannot be relabelled for
 * another agent, secret or version.
 */
import { concatBytes, equalBytes, lp, u64, utf8 } from "./bytes.js";
import { DEK_ID_LENGTH, DEK_LENGTH, type SecretVersionRef, SUITE_V1 } from "./envelope.js";
import { KeyholeError } from "./errors.js";
import { hpkeOpen, hpkeSeal, type RecipientKeyPair } from "./hpke.js";
import { fingerprint } from "./keys.js";

export const WRAP_MAGIC = utf8("KHW1");
export const WRAP_LENGTH = 4 + 1 + 16 + 32 + 48;
const WRAP_INFO = utf8("keyhole/v1/dek-wrap");

/** The recipient of a wrap: `owner:<vault id>` or `agent:<agent id>`, and its X25519 public key. */
export interface WrapRecipient {
  readonly recipientId: string;
  readonly publicKey: Uint8Array;
}

/** The recipient id of the owner of a vault. */
export function ownerRecipientId(vaultId: string): string {
  return `owner:${vaultId}`;
}

/** The recipient id of an agent. */
export function agentRecipientId(agentId: string): string {
  return `agent:${agentId}`;
}

/** AAD of a wrap. */
export function encodeWrapAad(
  ref: SecretVersionRef,
  dekId: Uint8Array,
  recipient: WrapRecipient,
): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/dek-wrap"),
    lp(ref.vaultId),
    lp(ref.secretId),
    u64(ref.version),
    lp(dekId),
    lp(recipient.recipientId),
    lp(recipient.publicKey),
  );
}

/** Seals a DEK to one recipient. */
export async function wrapDek(
  ref: SecretVersionRef,
  dekId: Uint8Array,
  dek: Uint8Array,
  recipient: WrapRecipient,
): Promise<Uint8Array> {
  if (dek.length !== DEK_LENGTH || dekId.length !== DEK_ID_LENGTH) {
    throw new KeyholeError("invalid_envelope");
  }
  if (recipient.publicKey.length !== 32) throw new KeyholeError("invalid_envelope");
  const aad = encodeWrapAad(ref, dekId, recipient);
  const { enc, ciphertext } = await hpkeSeal(recipient.publicKey, WRAP_INFO, aad, dek);
  return concatBytes(
    WRAP_MAGIC,
    Uint8Array.of(SUITE_V1),
    await fingerprint(recipient.publicKey),
    enc,
    ciphertext,
  );
}

/** The fields of a well-formed wrap; magic, suite and exact length are checked first. */
export function parseWrap(bytes: Uint8Array): {
  recipientFingerprint: Uint8Array;
  enc: Uint8Array;
  ciphertext: Uint8Array;
} {
  if (!(bytes instanceof Uint8Array) || bytes.length !== WRAP_LENGTH) {
    throw new KeyholeError("invalid_envelope");
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== WRAP_MAGIC[i]) throw new KeyholeError("invalid_envelope");
  }
  if (bytes[4] !== SUITE_V1) throw new KeyholeError("invalid_envelope");
  return {
    recipientFingerprint: bytes.slice(5, 21),
    enc: bytes.slice(21, 53),
    ciphertext: bytes.slice(53),
  };
}

/** Opens a wrap addressed to `recipient`, returning the DEK, or throws `decrypt_failed`. */
export async function unwrapDek(
  ref: SecretVersionRef,
  dekId: Uint8Array,
  recipientId: string,
  recipient: RecipientKeyPair,
  wrapBytes: Uint8Array,
): Promise<Uint8Array> {
  const wrap = parseWrap(wrapBytes);
  if (!equalBytes(wrap.recipientFingerprint, await fingerprint(recipient.publicKey))) {
    throw new KeyholeError("decrypt_failed");
  }
  const aad = encodeWrapAad(ref, dekId, { recipientId, publicKey: recipient.publicKey });
  const dek = await hpkeOpen(recipient, wrap.enc, WRAP_INFO, aad, wrap.ciphertext);
  if (dek.length !== DEK_LENGTH) throw new KeyholeError("decrypt_failed");
  return dek;
}
