/**
 * The owner's envelope work: open a stored version through the owner's own wrap (after checking
 * it), seal a new version, and wrap + sign a version for one agent. Every DEK handled here is
 * zeroed by the caller through `closeVersion` once the last wrap is made.
 */
import {
  agentRecipientId,
  encodeBase64url,
  fingerprint,
  type GrantUpload,
  isCanonicalHosts,
  isKeyholeError,
  KeyholeError,
  openValue,
  ownerRecipientId,
  parseValueEnvelope,
  type SecretVersionRef,
  sealValue,
  signGrant,
  unwrapDek,
  wrapDek,
  zeroize,
} from "@keyhole/core";
import type { OwnerSession } from "./session.js";
import { checkOwnerSignature, checkVersion, ownerWrapStatement, signOwnerWrap } from "./verify.js";
import { bytes, type OwnerSecretView } from "./views.js";

/** A secret version the owner holds the DEK of. */
export interface OpenVersion {
  readonly ref: SecretVersionRef;
  readonly name: string;
  readonly envelope: Uint8Array;
  readonly dekId: Uint8Array;
  readonly dek: Uint8Array;
}

/** Limits signed into a grant. */
export interface GrantLimits {
  readonly issuedAt: number;
  /** 0 = no expiry. */
  readonly notAfter: number;
  /** Canonical (core `canonicalHosts`). */
  readonly allowedHosts: readonly string[];
}

/** Zeroes a version's DEK. */
export function closeVersion(version: OpenVersion): void {
  zeroize(version.dek);
}

/** A version whose owner signature and version floor have been checked; nothing opened yet. */
export interface CheckedVersion {
  readonly ref: SecretVersionRef;
  readonly envelope: Uint8Array;
  readonly ownerWrap: Uint8Array;
  readonly dekId: Uint8Array;
}

/**
 * Checks a version the server returned without opening it: rollback, then the owner signature,
 * which binds the value, the owner's wrap, the version and the secret's name *and* id together.
 * `secret set` runs this on the current version before writing the next one, so a server cannot
 * answer for name A with the id of secret B and have A's value wrapped for B's grantees.
 */
export async function checkOwnerVersion(
  session: OwnerSession,
  view: OwnerSecretView,
): Promise<CheckedVersion> {
  checkVersion(session, view.id, view.version);
  const ref = { vaultId: session.vaultId, secretId: view.id, version: view.version };
  const envelope = bytes(view.value);
  const ownerWrap = bytes(view.owner_wrap);
  let dekId: Uint8Array;
  try {
    dekId = parseValueEnvelope(envelope).dekId;
  } catch {
    throw new KeyholeError("untrusted_server", "the server returned a malformed value envelope");
  }
  const statement = await ownerWrapStatement(session, ref, view.name, dekId, envelope, ownerWrap);
  await checkOwnerSignature(session, statement, view.owner_sig);
  return { ref, envelope, ownerWrap, dekId };
}

/**
 * Opens a version the server returned: rollback check, owner signature check, then the owner's
 * wrap. The version is pinned as seen only after all of that passed.
 */
export async function openOwnerVersion(
  session: OwnerSession,
  view: OwnerSecretView,
): Promise<OpenVersion> {
  const { ref, envelope, ownerWrap, dekId } = await checkOwnerVersion(session, view);
  let dek: Uint8Array;
  try {
    dek = await unwrapDek(
      ref,
      dekId,
      ownerRecipientId(session.vaultId),
      session.encKeys,
      ownerWrap,
    );
  } catch (error) {
    if (isKeyholeError(error)) {
      throw new KeyholeError("untrusted_server", "the owner's wrap of this secret does not open");
    }
    throw error;
  }
  session.noteVersion(view.id, view.version);
  return { ref, name: view.name, envelope, dekId, dek };
}

/** Decrypts an open version's value. */
export async function readValue(version: OpenVersion): Promise<Uint8Array> {
  try {
    return await openValue(version.ref, version.dek, version.envelope);
  } catch (error) {
    if (isKeyholeError(error)) {
      throw new KeyholeError("untrusted_server", "the stored value does not decrypt");
    }
    throw error;
  }
}

/** A freshly sealed version, with the owner's wrap and signature over it. */
export interface SealedVersion extends OpenVersion {
  readonly ownerWrap: Uint8Array;
  readonly ownerSig: string;
}

/** Seals `value` as a new version under a fresh DEK, wrapped and signed for the owner. */
export async function sealNewVersion(
  session: OwnerSession,
  ref: SecretVersionRef,
  name: string,
  value: Uint8Array,
): Promise<SealedVersion> {
  const { envelope, dek, dekId } = await sealValue(ref, value);
  const ownerWrap = await wrapDek(ref, dekId, dek, {
    recipientId: ownerRecipientId(ref.vaultId),
    publicKey: session.encKeys.publicKey,
  });
  const statement = await ownerWrapStatement(session, ref, name, dekId, envelope, ownerWrap);
  const ownerSig = await signOwnerWrap(session, statement);
  return { ref, name, envelope, dekId, dek, ownerWrap, ownerSig };
}

/**
 * Wraps an open version's DEK for one agent and signs the grant (KHG1). The agent's public key
 * must already have passed `checkAgentKey`.
 */
export async function grantFor(
  session: OwnerSession,
  version: OpenVersion,
  agent: { readonly id: string; readonly publicKey: Uint8Array },
  limits: GrantLimits,
): Promise<GrantUpload> {
  if (!isCanonicalHosts(limits.allowedHosts)) {
    throw new KeyholeError("untrusted_server", "the server returned a malformed host list");
  }
  const wrap = await wrapDek(version.ref, version.dekId, version.dek, {
    recipientId: agentRecipientId(agent.id),
    publicKey: agent.publicKey,
  });
  const sig = await signGrant(session.signingKey, {
    vaultId: version.ref.vaultId,
    secretId: version.ref.secretId,
    secretName: version.name,
    version: version.ref.version,
    dekId: version.dekId,
    agentId: agent.id,
    recipientFingerprint: await fingerprint(agent.publicKey),
    valueEnvelope: version.envelope,
    wrap,
    issuedAt: limits.issuedAt,
    notAfter: limits.notAfter,
    allowedHosts: limits.allowedHosts,
  });
  return {
    agent_id: agent.id,
    secret_id: version.ref.secretId,
    version: version.ref.version,
    wrap: encodeBase64url(wrap),
    issued_at: limits.issuedAt,
    not_after: limits.notAfter,
    allowed_hosts: [...limits.allowedHosts],
    sig: encodeBase64url(sig),
  };
}
