/**
 * Defence in depth on what the owner uploads (docs/api.md): the server verifies every `key_sig`
 * (`KHK1`), every grant signature (`KHG1`, over the version's `KHS1` bytes and the agent's
 * `KHW1` wrap) and the owner's `owner_sig` over its own wrap with the stored owner key before
 * storing it. The agents and the owner CLI verify
 * again; this check keeps a buggy or compromised client from planting garbage for them. Only
 * envelope *parsing* happens here (magic, suite, lengths, fingerprints): nothing is decrypted.
 */
import {
  equalBytes,
  fingerprint,
  KeyholeError,
  ownerRecipientId,
  parseValueEnvelope,
  parseWrap,
  verifyAgentKey,
  verifyGrant,
} from "@keyhole/core";
import type { NewGrant } from "../store/store.js";
import type { OwnerKeys } from "../vault-state.js";
import type { GrantUploadBody } from "./wire-checks.js";

/** The secret version a grant is for. */
export interface GrantTarget {
  readonly secretId: string;
  readonly secretName: string;
  readonly version: number;
  /** The version's `KHS1` bytes. */
  readonly value: Uint8Array;
}

/** The agent a grant is for. */
export interface GrantRecipient {
  readonly agentId: string;
  readonly encPk: Uint8Array;
}

/** The `dek_id` of a `KHS1` envelope, or `bad_request`. */
export function valueDekId(value: Uint8Array): Uint8Array {
  try {
    return parseValueEnvelope(value).dekId;
  } catch {
    throw new KeyholeError("bad_request", "the value is not a KHS1 envelope");
  }
}

/** Checks a `KHW1` wrap's form and that it is addressed to `publicKey`; else `bad_request`. */
export async function checkWrapRecipient(
  wrap: Uint8Array,
  publicKey: Uint8Array,
  what: string,
): Promise<void> {
  let parsed: ReturnType<typeof parseWrap>;
  try {
    parsed = parseWrap(wrap);
  } catch {
    throw new KeyholeError("bad_request", `${what} is not a KHW1 wrap`);
  }
  if (!equalBytes(parsed.recipientFingerprint, await fingerprint(publicKey))) {
    throw new KeyholeError("bad_request", `${what} is addressed to another key`);
  }
}

/** Verifies an agent key statement; `bad_request` when the signature fails. */
export async function checkAgentKey(
  owner: OwnerKeys,
  agentId: string,
  encPk: Uint8Array,
  createdAt: number,
  keySig: Uint8Array,
): Promise<void> {
  const ok = await verifyAgentKey(
    owner.ownerSignPk,
    { vaultId: owner.vaultId, agentId, agentPublicKey: encPk, createdAt },
    keySig,
  );
  if (!ok) throw new KeyholeError("bad_request", "key_sig does not verify");
}

/**
 * Verifies `owner_sig`: the owner's `KHG1` statement over its own wrap of `target` (agent id
 * `owner:<vault_id>`, the owner's X25519 fingerprint, times 0, no hosts). `bad_request` if it
 * fails. The owner CLI refuses a version without it, so the server cannot store a value of its
 * own sealed to the owner's public key without being caught.
 */
export async function checkOwnerSig(
  owner: OwnerKeys,
  target: GrantTarget,
  ownerWrap: Uint8Array,
  ownerSig: Uint8Array,
): Promise<void> {
  const ok = await verifyGrant(
    owner.ownerSignPk,
    {
      vaultId: owner.vaultId,
      secretId: target.secretId,
      secretName: target.secretName,
      version: target.version,
      dekId: valueDekId(target.value),
      agentId: ownerRecipientId(owner.vaultId),
      recipientFingerprint: await fingerprint(owner.ownerEncPk),
      valueEnvelope: target.value,
      wrap: ownerWrap,
      issuedAt: 0,
      notAfter: 0,
      allowedHosts: [],
    },
    ownerSig,
  );
  if (!ok) throw new KeyholeError("bad_request", "owner_sig does not verify");
}

/**
 * Verifies one uploaded grant for `recipient` on `target` and returns it ready to store.
 * `bad_request` for another agent or secret, a malformed or misaddressed wrap, a bad signature,
 * or a grant that has already expired at `now`.
 */
export async function checkGrantUpload(
  owner: OwnerKeys,
  upload: GrantUploadBody,
  target: GrantTarget,
  recipient: GrantRecipient,
  now: number,
): Promise<NewGrant> {
  if (upload.agent_id !== recipient.agentId || upload.secret_id !== target.secretId) {
    throw new KeyholeError("bad_request", "a grant names another agent or secret");
  }
  if (upload.version !== target.version) {
    throw new KeyholeError("conflict", "a grant names another version");
  }
  if (upload.not_after !== 0 && upload.not_after <= now) {
    throw new KeyholeError("bad_request", "a grant has already expired");
  }
  await checkWrapRecipient(upload.wrap, recipient.encPk, "a grant's wrap");
  const ok = await verifyGrant(
    owner.ownerSignPk,
    {
      vaultId: owner.vaultId,
      secretId: target.secretId,
      secretName: target.secretName,
      version: target.version,
      dekId: valueDekId(target.value),
      agentId: recipient.agentId,
      recipientFingerprint: await fingerprint(recipient.encPk),
      valueEnvelope: target.value,
      wrap: upload.wrap,
      issuedAt: upload.issued_at,
      notAfter: upload.not_after,
      allowedHosts: upload.allowed_hosts,
    },
    upload.sig,
  );
  if (!ok) throw new KeyholeError("bad_request", "a grant signature does not verify");
  return {
    agentId: recipient.agentId,
    secretId: target.secretId,
    version: target.version,
    wrap: upload.wrap,
    issuedAt: upload.issued_at,
    notAfter: upload.not_after,
    allowedHosts: upload.allowed_hosts,
    sig: upload.sig,
    agentEncPk: recipient.encPk,
  };
}
