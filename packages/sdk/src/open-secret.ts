/**
 * The agent's checks on a secret answer, in the order FORMATS.md "Grant statement" fixes, then the
 * decryption (DESIGN.md §3 "Reading a secret, agent side"):
 *
 *   1. the owner key's fingerprint equals the one pinned in the token     → untrusted_server
 *   2. the answer is for the name asked                                    → untrusted_server
 *   3. vault id and agent id equal those pinned earlier                    → untrusted_server
 *   4. the owner's grant signature covers exactly this answer, our own key
 *      and the name asked                                                  → untrusted_server
 *   5. the (version, issued_at) pair is not older than the newest seen for
 *      this secret: a re-grant of the same version (hosts narrowed, expiry
 *      shortened) must not be undone by replaying the earlier grant       → rollback_detected
 *   6. `not_after` (when non-zero) has not passed                         → grant_expired
 *   7. HPKE-open the DEK, AES-GCM-open the value, zero the DEK
 *
 * The AAD of step 7 is rebuilt from the secret id and version the signature covered. Nothing is
 * released unless every step passes.
 */
import {
  agentRecipientId,
  equalBytes,
  fingerprint,
  KeyholeError,
  openValue,
  type RecipientKeyPair,
  unwrapDek,
  verifyGrant,
  zeroize,
} from "@keyhole/core";
import type { SecretAnswer } from "./answer.js";
import { untrustedServer } from "./errors.js";

/** The newest grant of a secret an agent has verified: its version, then its signing time. */
export interface GrantFloor {
  readonly version: number;
  readonly issuedAt: number;
}

/** True when `grant` is older than `floor`: a lower version, or the same one signed earlier. */
export function isOlderGrant(grant: GrantFloor, floor: GrantFloor): boolean {
  return (
    grant.version < floor.version ||
    (grant.version === floor.version && grant.issuedAt < floor.issuedAt)
  );
}

/** What the agent knows before it looks at an answer. */
export interface OpenContext {
  /** The name the caller asked for. */
  readonly askedName: string;
  /** fpr of the owner's signing key, from the token. */
  readonly ownerFingerprint: Uint8Array;
  /** The agent's own X25519 key pair, derived from the token's seed. */
  readonly recipient: RecipientKeyPair;
  /** fpr of `recipient.publicKey`. */
  readonly recipientFingerprint: Uint8Array;
  /** Vault id and agent id seen in earlier verified answers, if any. */
  readonly pinnedVaultId: string | undefined;
  readonly pinnedAgentId: string | undefined;
  /** The newest grant verified so far for this secret id, if any. */
  readonly floor: (secretId: string) => GrantFloor | undefined;
  /** Now, in ms since the epoch. */
  readonly now: number;
}

/** Verifies `answer` against `context` and returns the plaintext, or throws. Caller zeroes it. */
export async function openSecretAnswer(
  answer: SecretAnswer,
  context: OpenContext,
): Promise<Uint8Array> {
  if (!equalBytes(await fingerprint(answer.ownerSignPk), context.ownerFingerprint)) {
    throw untrustedServer("the owner key does not match the one pinned in the agent token");
  }
  if (answer.name !== context.askedName) {
    throw untrustedServer("the answer is for another secret name");
  }
  if (
    (context.pinnedVaultId !== undefined && answer.vaultId !== context.pinnedVaultId) ||
    (context.pinnedAgentId !== undefined && answer.agentId !== context.pinnedAgentId)
  ) {
    throw untrustedServer("the vault id or agent id changed");
  }
  const signed = await verifyGrant(
    answer.ownerSignPk,
    {
      vaultId: answer.vaultId,
      secretId: answer.secretId,
      secretName: context.askedName,
      version: answer.version,
      dekId: answer.dekId,
      agentId: answer.agentId,
      recipientFingerprint: context.recipientFingerprint,
      valueEnvelope: answer.value,
      wrap: answer.wrap,
      issuedAt: answer.issuedAt,
      notAfter: answer.notAfter,
      allowedHosts: answer.allowedHosts,
    },
    answer.sig,
  );
  if (!signed) throw untrustedServer("the owner's grant signature does not verify");
  const floor = context.floor(answer.secretId);
  if (floor !== undefined && isOlderGrant(answer, floor)) {
    throw new KeyholeError(
      "rollback_detected",
      answer.version < floor.version
        ? `the server served version ${answer.version} after version ${floor.version} of this secret`
        : "the server served an earlier grant of this version than one already seen",
    );
  }
  // Exclusive, as on the server: at now == not_after the grant has expired.
  if (answer.notAfter !== 0 && context.now >= answer.notAfter) {
    throw new KeyholeError("grant_expired");
  }
  // From here on every input is covered by the owner's signature.
  const ref = { vaultId: answer.vaultId, secretId: answer.secretId, version: answer.version };
  const dek = await unwrapDek(
    ref,
    answer.dekId,
    agentRecipientId(answer.agentId),
    context.recipient,
    answer.wrap,
  );
  try {
    return await openValue(ref, dek, answer.value);
  } finally {
    zeroize(dek);
  }
}
