/**
 * What the owner client checks before it trusts anything the server says (SECURITY-TESTS #8,
 * owner side). The server knows every public key, so it could hand the owner its own X25519 key
 * as an agent's (then every DEK wrapped "for the agent" is the server's), or seal a forged value
 * to the owner's public key. Each check uses only the owner's local keys:
 *
 * - an agent's key must carry a valid `KHK1` signature by the owner (before every wrap);
 * - a secret version must carry the owner's `KHG1` signature over the owner's own wrap;
 * - a version must never be lower than the highest this machine has seen.
 */
import {
  type AgentView,
  encodeBase64url,
  fingerprint,
  type GrantStatement,
  KeyholeError,
  ownerRecipientId,
  type SecretVersionRef,
  signGrant,
  verifyAgentKey,
  verifyGrant,
} from "@keyhole/core";
import type { OwnerSession } from "./session.js";
import { bytes } from "./views.js";

/** An agent's key as the server reports it. */
export interface AgentKeyClaim {
  readonly agentId: string;
  readonly name: string;
  /** base64url X25519 public key. */
  readonly encPk: string;
  readonly createdAt: number;
  /** base64url Ed25519 signature (KHK1). */
  readonly keySig: string;
}

/** The key claim in an `AgentView` the server sent. */
export function keyClaimOf(agent: AgentView): AgentKeyClaim {
  return {
    agentId: agent.id,
    name: agent.name,
    encPk: agent.enc_pk,
    createdAt: agent.created_at,
    keySig: agent.key_sig,
  };
}

/**
 * Verifies an agent's `KHK1` with the owner's own public key and returns the agent's key bytes.
 * A bad signature is `untrusted_server`: the caller must wrap nothing.
 */
export async function checkAgentKey(
  session: OwnerSession,
  agent: AgentKeyClaim,
): Promise<Uint8Array> {
  const publicKey = bytes(agent.encPk);
  const ok = await verifyAgentKey(
    session.signingKey.publicKey,
    {
      vaultId: session.vaultId,
      agentId: agent.agentId,
      agentPublicKey: publicKey,
      createdAt: agent.createdAt,
    },
    bytes(agent.keySig),
  );
  if (!ok) {
    throw new KeyholeError(
      "untrusted_server",
      `the server's key for agent '${agent.name}' is not signed by this owner; nothing was wrapped`,
    );
  }
  return publicKey;
}

/** Refuses a version lower than the highest seen for this secret. */
export function checkVersion(session: OwnerSession, secretId: string, version: number): void {
  if (version < session.versionSeen(secretId)) {
    throw new KeyholeError(
      "rollback_detected",
      `the server served version ${version} of a secret already seen at version ${session.versionSeen(secretId)}`,
    );
  }
}

/** The statement the owner signs over its own wrap (the `owner_sig` of a secret version). */
export async function ownerWrapStatement(
  session: OwnerSession,
  ref: SecretVersionRef,
  name: string,
  dekId: Uint8Array,
  envelope: Uint8Array,
  ownerWrap: Uint8Array,
): Promise<GrantStatement> {
  return {
    vaultId: ref.vaultId,
    secretId: ref.secretId,
    secretName: name,
    version: ref.version,
    dekId,
    agentId: ownerRecipientId(ref.vaultId),
    recipientFingerprint: await fingerprint(session.encKeys.publicKey),
    valueEnvelope: envelope,
    wrap: ownerWrap,
    // Fixed at 0: the version number, pinned per secret, is what orders owner writes.
    issuedAt: 0,
    notAfter: 0,
    allowedHosts: [],
  };
}

/** Signs the owner's own wrap; the result goes in `SecretPut.owner_sig`. */
export async function signOwnerWrap(
  session: OwnerSession,
  statement: GrantStatement,
): Promise<string> {
  return encodeBase64url(await signGrant(session.signingKey, statement));
}

/**
 * Verifies `owner_sig` over a version the server returned. It is the only proof that the owner
 * wrote the value (the server knows the owner's X25519 public key and could seal its own), so
 * a missing one is refused like a wrong one: `untrusted_server`.
 */
export async function checkOwnerSignature(
  session: OwnerSession,
  statement: GrantStatement,
  ownerSig: string | null,
): Promise<void> {
  if (ownerSig === null) {
    throw new KeyholeError(
      "untrusted_server",
      "the stored value carries no owner signature, so it cannot be shown to be this owner's",
    );
  }
  if (!(await verifyGrant(session.signingKey.publicKey, statement, bytes(ownerSig)))) {
    throw new KeyholeError(
      "untrusted_server",
      "the stored value is not signed by this owner; it may have been forged by the server",
    );
  }
}
