/**
 * Test data and the shared context of the store contract (`contract.ts`): each section gets a
 * fresh store per test through `ContractContext`, so tests cannot depend on each other.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { isKeyholeError, newId } from "@keyhole/core";
import type {
  AgentPrincipal,
  AuditRequest,
  NewAgent,
  NewGrant,
  NewToken,
  SecretWrite,
  Store,
} from "./store.js";

/** A fresh, empty store plus the controls the contract needs. */
export interface StoreHarness {
  readonly store: Store;
  /** While true, every audit append fails inside its transaction. */
  setAuditFailure(fail: boolean): void;
  /** Closes the store and removes what it created. */
  cleanup(): Promise<void>;
}

/** What each contract section works with. */
export interface ContractContext {
  readonly store: Store;
  readonly h: StoreHarness;
  /** A new store with no vault row. */
  empty(): Promise<void>;
  /** A new store with its vault. */
  fresh(): Promise<void>;
  /** A new store with a secret `db-password` (v1) granted to an agent `ci`. */
  setup(): Promise<{
    secret: SecretWrite;
    agent: NewAgent;
    token: NewToken;
    principal: AgentPrincipal;
  }>;
}

/** The contract's clock: every time is relative to this. */
export const T0 = 1_700_000_000_000;

/** Random bytes (keys, signatures and wraps the store does not check). */
export function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n));
}

/** The request half of an audit entry. */
export function request(overrides: Partial<AuditRequest> = {}): AuditRequest {
  return {
    ts: T0,
    requestId: "req-1",
    actorType: "owner",
    actorId: "owner",
    clientIp: "127.0.0.1",
    userAgent: "contract",
    ...overrides,
  };
}

/** A new agent with random key material. */
export function newAgent(name: string, overrides: Partial<NewAgent> = {}): NewAgent {
  return {
    id: newId("agent"),
    name,
    encPk: bytes(32),
    createdAt: T0,
    keySig: bytes(64),
    expiresAt: null,
    allowedCidrs: [],
    ...overrides,
  };
}

/** A new token id and verifier. */
export function newToken(): NewToken {
  return { tokenId: bytes(16), verifier: bytes(32), pepperKid: "kid-1" };
}

/** A grant of `secretId` at `version` for `agent`. */
export function grantFor(
  agent: NewAgent,
  secretId: string,
  version: number,
  notAfter = 0,
): NewGrant {
  return {
    agentId: agent.id,
    secretId,
    version,
    wrap: bytes(101),
    issuedAt: T0,
    notAfter,
    allowedHosts: ["api.example.com"],
    sig: bytes(64),
    agentEncPk: agent.encPk,
  };
}

/** A first version of a new secret. */
export function secretWrite(name: string, overrides: Partial<SecretWrite> = {}): SecretWrite {
  return {
    id: newId("secret"),
    name,
    expectedVersion: 0,
    version: 1,
    value: bytes(60),
    ownerWrap: bytes(101),
    ownerSig: bytes(64),
    grants: [],
    ...overrides,
  };
}

/** Asserts a KeyholeError rejection with `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isKeyholeError(error) && error.code === code);
}
