/**
 * Shared fixtures for core's tests: an owner, agents and signed secret versions built with the
 * public API only. Named `*.test.helper.ts` so it compiles next to the tests, is not run as a test
 * file (scripts/test.mjs runs `*.test.js`) and is left out of the npm package (`!dist/**\/*.test.*`).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { inspect } from "node:util";
import {
  type AgentKeys,
  AgentToken,
  agentRecipientId,
  deriveRecipientKeyPair,
  fingerprint,
  type GrantStatement,
  generateSigningSeed,
  importSigningKey,
  isKeyholeError,
  type KeyholeErrorCode,
  ownerRecipientId,
  type RecipientKeyPair,
  randomBytes,
  type SecretVersionRef,
  type SigningKey,
  sealValue,
  signGrant,
  toHex,
  wrapDek,
} from "./index.js";

/** Synchronous SHA-256 from node:crypto, as the server and CLI pass to the audit functions. */
export function sha256Sync(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

/** A copy of `bytes` with bit `bit` flipped (bit 0 = most significant bit of byte 0). */
export function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3] = (out[bit >> 3] as number) ^ (0x80 >> (bit & 7));
  return out;
}

/** A copy of `bytes` with byte `index` set to `value`. */
export function withByte(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[index] = value;
  return out;
}

/** Every text form a leaked byte string could take in a log line or an error. */
export function renderings(bytes: Uint8Array): string[] {
  const buffer = Buffer.from(bytes);
  return [
    toHex(bytes),
    buffer.toString("base64"),
    buffer.toString("base64url"),
    buffer.toString("base64").replace(/=+$/, ""),
    Array.from(bytes).join(","),
  ];
}

/** Asserts that none of `needles` occurs in `haystack`. */
export function assertNoLeak(haystack: string, needles: readonly string[], what: string): void {
  for (const needle of needles) {
    assert.ok(!haystack.includes(needle), `${what} leaks ${needle.slice(0, 12)}…`);
  }
}

/**
 * Asserts that `action` fails with a KeyholeError of one of `codes`, whose own properties are
 * only the standard ones (nothing partial rides along), and returns the error.
 */
export async function rejectsWith(
  action: () => Promise<unknown> | unknown,
  codes: KeyholeErrorCode | readonly KeyholeErrorCode[],
): Promise<Error> {
  const allowed: readonly KeyholeErrorCode[] = typeof codes === "string" ? [codes] : codes;
  let caught: unknown;
  try {
    await action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught !== undefined, "expected a rejection");
  assert.ok(isKeyholeError(caught), `expected a KeyholeError, got ${String(caught)}`);
  assert.ok(allowed.includes(caught.code), `unexpected code ${caught.code}`);
  const own = Object.getOwnPropertyNames(caught).filter(
    (key) => (caught as unknown as Record<string, unknown>)[key] !== undefined,
  );
  assert.deepEqual(own.sort(), ["code", "message", "name", "stack"]);
  assert.equal(caught.cause, undefined);
  return caught;
}

/** The full rendering of an error, hidden properties included. */
export function inspectFully(value: unknown): string {
  return `${inspect(value, { showHidden: true, depth: 10 })}\n${String(value)}`;
}

/** A vault owner: Ed25519 signing key and X25519 key pair. */
export interface Owner {
  readonly signing: SigningKey;
  readonly fingerprint: Uint8Array;
  readonly enc: RecipientKeyPair;
}

/** Makes a random owner. */
export async function makeOwner(): Promise<Owner> {
  const signing = await importSigningKey(generateSigningSeed());
  return {
    signing,
    fingerprint: await fingerprint(signing.publicKey),
    enc: await deriveRecipientKeyPair(randomBytes(32)),
  };
}

/** An agent with its token and derived keys. */
export interface Agent {
  readonly agentId: string;
  readonly token: AgentToken;
  readonly keys: AgentKeys;
}

/** Makes an agent whose token is pinned to `owner`. */
export async function makeAgent(owner: Owner, agentId: string): Promise<Agent> {
  const token = AgentToken.generate(owner.fingerprint);
  return { agentId, token, keys: await token.deriveKeys() };
}

/** One sealed version of a secret with its wraps and the owner's grants. */
export interface SealedVersion {
  readonly ref: SecretVersionRef;
  readonly secretName: string;
  readonly value: Uint8Array;
  readonly envelope: Uint8Array;
  readonly dek: Uint8Array;
  readonly dekId: Uint8Array;
  readonly ownerWrap: Uint8Array;
  /** Per agent id: the agent's wrap, grant statement and signature. */
  readonly grants: ReadonlyMap<
    string,
    { wrap: Uint8Array; statement: GrantStatement; sig: Uint8Array }
  >;
}

/** Seals `value` as `ref`, wraps it for the owner and each agent, and signs a grant for each. */
export async function sealVersion(
  owner: Owner,
  ref: SecretVersionRef,
  secretName: string,
  value: Uint8Array,
  agents: readonly Agent[],
): Promise<SealedVersion> {
  const { envelope, dek, dekId } = await sealValue(ref, value);
  const ownerWrap = await wrapDek(ref, dekId, dek, {
    recipientId: ownerRecipientId(ref.vaultId),
    publicKey: owner.enc.publicKey,
  });
  const grants = new Map<
    string,
    { wrap: Uint8Array; statement: GrantStatement; sig: Uint8Array }
  >();
  for (const agent of agents) {
    const wrap = await wrapDek(ref, dekId, dek, {
      recipientId: agentRecipientId(agent.agentId),
      publicKey: agent.keys.recipient.publicKey,
    });
    const statement: GrantStatement = {
      vaultId: ref.vaultId,
      secretId: ref.secretId,
      secretName,
      version: ref.version,
      dekId,
      agentId: agent.agentId,
      recipientFingerprint: await fingerprint(agent.keys.recipient.publicKey),
      valueEnvelope: envelope,
      wrap,
      issuedAt: 1_767_225_600_000,
      notAfter: 0,
      allowedHosts: ["api.example.com"],
    };
    grants.set(agent.agentId, { wrap, statement, sig: await signGrant(owner.signing, statement) });
  }
  return { ref, secretName, value, envelope, dek, dekId, ownerWrap, grants };
}

/** `map.get(key)`, failing the test when absent. */
export function must<K, V>(map: ReadonlyMap<K, V>, key: K): V {
  const value = map.get(key);
  assert.ok(value !== undefined, `missing fixture ${String(key)}`);
  return value;
}
