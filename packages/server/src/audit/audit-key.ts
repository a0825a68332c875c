/**
 * The server's audit key: an Ed25519 key (seed in `DATA_DIR/audit-key`, 0600) that signs
 * checkpoints of the audit chain head, so the owner can pin one and later detect a rewritten
 * or truncated log. `node:crypto` here: the server is Node-only and signs synchronously.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign } from "node:crypto";

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410 §7).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** The checkpoint signing key. */
export interface AuditKey {
  /** The raw 32-byte Ed25519 public key (`audit_pk`). */
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** The audit key for a 32-byte seed. */
export function auditKeyFromSeed(seed: Uint8Array): AuditKey {
  if (seed.length !== 32) throw new Error("the audit key seed must be 32 bytes");
  const der = Buffer.concat([PKCS8_PREFIX, seed]);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return {
    publicKey,
    sign: (message) => new Uint8Array(sign(null, message, privateKey)),
  };
}
