/**
 * Agent authentication (docs/api.md): `Authorization: Keyhole <b64u token_id>.<b64u auth_key>`.
 * The server recomputes `HMAC-SHA256(pepper[kid], verifierMessage(token_id, auth_key))` and
 * compares it with the stored verifier using `crypto.timingSafeEqual`. An unknown token id runs
 * the same HMAC and comparison against a dummy verifier, and every failure gets the same answer
 * from the caller (SECURITY-TESTS #11). A token id on the revoked-token list (revoked-tokens.ts)
 * fails too, after the same work, even when a restored database still holds its verifier; once
 * its row is gone, the failure still names the agent it belonged to (`retired_tokens`).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { encodeBase64url, parseAgentAuthorization } from "@keyhole/core";
import type { AgentAuthFacts, Store } from "../store/store.js";
import { computeVerifier, type PepperRing } from "./pepper.js";
import type { RevokedTokens } from "./revoked-tokens.js";

/** Why an agent credential failed (for the audit log only; never sent to the client). */
export type AgentAuthFailure =
  | "malformed"
  | "unknown_token"
  | "bad_key"
  | "expired"
  | "revoked"
  /**
   * On the revoked-token list: revoked or rotated out (its row is gone), or still in a database
   * restored from an older copy.
   */
  | "retired";

/** The outcome of checking an agent credential. */
export type AgentAuthResult =
  | {
      readonly ok: true;
      readonly agent: AgentAuthFacts;
      readonly tokenId: Uint8Array;
      readonly tokenKey: string;
    }
  | {
      readonly ok: false;
      readonly reason: AgentAuthFailure;
      /** The token id as a rate-limit key, when the header carried a well-formed one. */
      readonly tokenKey: string | null;
      /** The agent the token id belongs to, or "". */
      readonly agentId: string;
    };

// Compared against when the token id is unknown, so both paths do the same work.
const DUMMY_VERIFIER = new Uint8Array(randomBytes(32));

/** Checks an agent `Authorization` header value. */
export async function authenticateAgent(
  header: string,
  deps: {
    store: Pick<Store, "findAgentByTokenId" | "findRetiredTokenAgent">;
    peppers: PepperRing;
    revoked: Pick<RevokedTokens, "has">;
    now: number;
  },
): Promise<AgentAuthResult> {
  const parsed = parseAgentAuthorization(header);
  if (parsed === null) return { ok: false, reason: "malformed", tokenKey: null, agentId: "" };
  const { tokenId, authKey } = parsed;
  const tokenKey = encodeBase64url(tokenId);
  const lookup = await deps.store.findAgentByTokenId(tokenId);
  const pepper = lookup ? deps.peppers.byKid(lookup.pepperKid) : undefined;
  const usable = lookup !== null && pepper !== undefined && lookup.verifier.length === 32;
  const expected = usable ? lookup.verifier : DUMMY_VERIFIER;
  const computed = computeVerifier((pepper ?? deps.peppers.current).key, tokenId, authKey);
  const match = timingSafeEqual(computed, expected);
  const retired = deps.revoked.has(tokenId);
  if (!usable || !match) {
    if (lookup === null && retired) {
      // Revoked or rotated out: the token row is gone, but the audit entry still names the
      // agent. Only ids on the in-memory list cost this lookup, so unknown ids add no work.
      const agentId = (await deps.store.findRetiredTokenAgent(tokenId)) ?? "";
      return { ok: false, reason: "retired", tokenKey, agentId };
    }
    return {
      ok: false,
      reason: lookup === null ? "unknown_token" : "bad_key",
      tokenKey,
      agentId: lookup?.agent.id ?? "",
    };
  }
  const agent = lookup.agent;
  if (retired) return { ok: false, reason: "retired", tokenKey, agentId: agent.id };
  if (agent.revokedAt !== null)
    return { ok: false, reason: "revoked", tokenKey, agentId: agent.id };
  if (agent.expiresAt !== null && agent.expiresAt <= deps.now) {
    return { ok: false, reason: "expired", tokenKey, agentId: agent.id };
  }
  return { ok: true, agent, tokenId, tokenKey };
}
