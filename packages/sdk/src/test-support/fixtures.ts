/**
 * Owner-side test fixtures made only with core's own functions: an owner signing key, agents with
 * real `kh1_` tokens, and secret versions sealed (KHS1), wrapped (KHW1) and granted (KHG1) the way
 * the owner CLI does it, rendered as the JSON answers of docs/api.md. Tests build honest answers
 * here and then tamper with them to play a malicious server.
 */
import {
  type AgentSecretResponse,
  AgentToken,
  agentRecipientId,
  decodeBase64url,
  encodeBase64url,
  fingerprint,
  formatAgentAuthorization,
  generateSigningSeed,
  importSigningKey,
  newId,
  type RecipientKeyPair,
  type SigningKey,
  sealValue,
  signGrant,
  utf8,
  wrapDek,
  zeroize,
} from "@keyhole/core";

/** The vault owner: its signing key and the fingerprint agents pin. */
export interface TestOwner {
  readonly vaultId: string;
  readonly key: SigningKey;
  readonly publicKey: Uint8Array;
  readonly fingerprint: Uint8Array;
}

/** An agent and everything a test may search for in output: token text, seed, auth key. */
export interface TestAgent {
  readonly id: string;
  readonly tokenText: string;
  readonly tokenId: Uint8Array;
  readonly seed: Uint8Array;
  readonly authKey: Uint8Array;
  readonly recipient: RecipientKeyPair;
  readonly publicKey: Uint8Array;
  /** The exact Authorization header the agent's SDK must send. */
  readonly authorization: string;
}

/** Who a wrap and grant are made for: an agent id and the X25519 key the wrap is sealed to. */
export type GrantRecipient = Pick<TestAgent, "id" | "publicKey">;

/** One version of one secret, with an answer for each recipient. */
export interface SecretVersion {
  readonly vaultId: string;
  readonly secretId: string;
  readonly name: string;
  readonly version: number;
  readonly value: Uint8Array;
  /** Answers keyed by agent id, exactly as the server would send them. */
  readonly answers: ReadonlyMap<string, AgentSecretResponse>;
}

/** How to make a secret version; the defaults are what an honest owner does. */
export interface SecretSpec {
  readonly name: string;
  readonly value: Uint8Array | string;
  readonly recipients: readonly GrantRecipient[];
  readonly secretId?: string;
  readonly version?: number;
  readonly issuedAt?: number;
  readonly notAfter?: number;
  readonly allowedHosts?: readonly string[];
  /** Sign with another key than the owner's (a forging server). */
  readonly signer?: SigningKey;
  /** Put another vault id in the statement and answer. */
  readonly vaultId?: string;
  /** Put another name in the signed statement than the one in the answer. */
  readonly signedName?: string;
}

/** A fresh owner with a random Ed25519 key. */
export async function makeOwner(vaultId: string = newId("vault")): Promise<TestOwner> {
  const seed = generateSigningSeed();
  const key = await importSigningKey(seed);
  zeroize(seed);
  return { vaultId, key, publicKey: key.publicKey, fingerprint: await fingerprint(key.publicKey) };
}

/** A fresh agent whose token pins `owner`'s key. */
export async function makeAgent(owner: TestOwner, id: string = newId("agent")): Promise<TestAgent> {
  const token = AgentToken.generate(owner.fingerprint);
  const tokenText = token.encode();
  const keys = await token.deriveKeys();
  const raw = decodeBase64url(tokenText.slice(4));
  return {
    id,
    tokenText,
    tokenId: token.tokenId,
    seed: raw.slice(16, 48),
    authKey: keys.authKey,
    recipient: keys.recipient,
    publicKey: keys.recipient.publicKey,
    authorization: formatAgentAuthorization(token.tokenId, keys.authKey),
  };
}

/** Seals, wraps and signs one secret version for each recipient, as the owner CLI would. */
export async function makeSecretVersion(
  owner: TestOwner,
  spec: SecretSpec,
): Promise<SecretVersion> {
  const vaultId = spec.vaultId ?? owner.vaultId;
  const secretId = spec.secretId ?? newId("secret");
  const version = spec.version ?? 1;
  const value = typeof spec.value === "string" ? utf8(spec.value) : spec.value;
  const ref = { vaultId, secretId, version };
  const { envelope, dek, dekId } = await sealValue(ref, value);
  const answers = new Map<string, AgentSecretResponse>();
  try {
    for (const recipient of spec.recipients) {
      const wrap = await wrapDek(ref, dekId, dek, {
        recipientId: agentRecipientId(recipient.id),
        publicKey: recipient.publicKey,
      });
      const issuedAt = spec.issuedAt ?? Date.now();
      const notAfter = spec.notAfter ?? 0;
      const allowedHosts = [...(spec.allowedHosts ?? ["api.example.com"])];
      const sig = await signGrant(spec.signer ?? owner.key, {
        vaultId,
        secretId,
        secretName: spec.signedName ?? spec.name,
        version,
        dekId,
        agentId: recipient.id,
        recipientFingerprint: await fingerprint(recipient.publicKey),
        valueEnvelope: envelope,
        wrap,
        issuedAt,
        notAfter,
        allowedHosts,
      });
      answers.set(recipient.id, {
        vault_id: vaultId,
        agent_id: recipient.id,
        owner_sign_pk: encodeBase64url(owner.publicKey),
        secret_id: secretId,
        name: spec.name,
        version,
        value: encodeBase64url(envelope),
        wrap: encodeBase64url(wrap),
        grant: {
          issued_at: issuedAt,
          not_after: notAfter,
          allowed_hosts: allowedHosts,
          sig: encodeBase64url(sig),
        },
      });
    }
  } finally {
    zeroize(dek);
  }
  return { vaultId, secretId, name: spec.name, version, value, answers };
}

/** A deep copy of the answer `version` holds for `agent`, for a test to tamper with. */
export function answerFor(
  version: SecretVersion,
  agent: Pick<TestAgent, "id">,
): AgentSecretResponse {
  const answer = version.answers.get(agent.id);
  if (answer === undefined) throw new Error("no answer for this agent in this secret version");
  return structuredClone(answer);
}

/** A random 32-byte canary value, as SECURITY-TESTS.md #1 asks secrets to hold. */
export function canary(): Uint8Array {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  return bytes;
}
