/**
 * The authentication policy of every request: which credential a route takes, what a failure
 * costs, and what role separation answers.
 *
 * - Public routes take nothing. Agent routes take an agent token, owner routes an owner
 *   signature. The other role's *valid* credential gets 403 (and an audit entry); a missing,
 *   malformed or wrong one gets 401, the same body whatever failed.
 * - Rate limits (SECURITY-TESTS #13): every failure counts against the client source (IPv4
 *   address or IPv6 /64) and, when the header carried a well-formed token id, against that token
 *   id. Once a source or token id is blocked, its further *failures* get 429 with `retry-after`,
 *   and requests from a blocked source with no usable credential are refused before any work.
 *   A request presenting a valid credential is always verified and served: guessing a 256-bit
 *   auth key or forging an Ed25519 signature is hopeless anyway, so the limit's job is to stop
 *   floods and low-entropy guessing (the bootstrap code), not to lock out a legitimate agent
 *   that shares an address, or a token id, with someone else's failures. With several servers
 *   on one PostgreSQL database, the limiters and the owner nonce store are shared through it
 *   (pg-limiter.ts, pg-nonces.ts), so a limit, a block and a replay check hold across servers.
 * - An agent with a CIDR allowlist is accepted only from those ranges (SECURITY-TESTS #16). A
 *   valid token from elsewhere is a failure like a wrong key (401, counted, `auth.failed` with
 *   reason `agent_source_not_allowed` and `likely_leak`), so a stolen token used from outside
 *   reads nothing and learns nothing about why.
 * - Every failure writes an `auth.failed` entry, throttled per source, and per source and token
 *   id when the token id names an agent, so failures aimed at an agent are recorded under its
 *   id (`FailedAuthRecorder`).
 */
import { KeyholeError } from "@keyhole/core";
import { addressAllowed, parseRanges } from "../http/client-address.js";
import type { RequestContext } from "../http/context.js";
import type { Route } from "../http/router.js";
import type { Store } from "../store/store.js";
import type { VaultState } from "../vault-state.js";
import { authenticateAgent } from "./agent-auth.js";
import { type FailedAuthRecorder, SOURCE_NOT_ALLOWED } from "./failed-auth.js";
import type { NonceStore } from "./nonce-cache.js";
import { authenticateOwner } from "./owner-auth.js";
import type { PepperRing } from "./pepper.js";
import { type AuthLimiter, retryAfterSeconds } from "./rate-limit.js";
import type { RevokedTokens } from "./revoked-tokens.js";

/** What the gate needs. */
export interface GateDeps {
  readonly store: Pick<Store, "findAgentByTokenId" | "findRetiredTokenAgent" | "appendAudit">;
  readonly peppers: PepperRing;
  readonly revoked: Pick<RevokedTokens, "has">;
  readonly vault: VaultState;
  /** In memory for one server; shared (PostgreSQL) when several serve one database. */
  readonly nonces: NonceStore;
  readonly sources: AuthLimiter;
  readonly tokens: AuthLimiter;
  readonly failures: FailedAuthRecorder;
}

/** Authenticates requests and records failures. */
export class AuthGate {
  readonly #deps: GateDeps;

  constructor(deps: GateDeps) {
    this.#deps = deps;
  }

  /** Sets `ctx.principal` for the route's role, or throws 401/403/409/429. */
  async authenticate(ctx: RequestContext, route: Route): Promise<void> {
    if (route.role === "public") return;
    const vault = await this.#deps.vault.current();
    if (route.role === "owner" && vault.ownerSignPk === null) {
      throw new KeyholeError("not_initialized");
    }
    const header = ctx.authorization ?? "";
    if (header.startsWith("Keyhole-Owner ") && vault.ownerSignPk !== null) {
      const result = await authenticateOwner(
        header,
        {
          vaultId: vault.vaultId,
          ownerSignPk: vault.ownerSignPk,
          method: ctx.method,
          target: ctx.target,
          body: ctx.rawBody,
          now: ctx.now,
        },
        this.#deps.nonces,
      );
      if (!result.ok) {
        if (result.reason === "busy")
          throw new KeyholeError("rate_limited", undefined, { retryAfterSeconds: 1 });
        return this.fail(ctx, `owner_${result.reason}`);
      }
      ctx.principal = { kind: "owner" };
    } else if (header.startsWith("Keyhole ")) {
      const result = await authenticateAgent(header, {
        store: this.#deps.store,
        peppers: this.#deps.peppers,
        revoked: this.#deps.revoked,
        now: ctx.now,
      });
      if (!result.ok) {
        return this.fail(ctx, `agent_${result.reason}`, result.tokenKey, result.agentId);
      }
      const ranges = parseRanges(result.agent.allowedCidrs, "stored range");
      if (!addressAllowed(ranges, ctx.clientIp)) {
        return this.fail(ctx, SOURCE_NOT_ALLOWED, result.tokenKey, result.agent.id);
      }
      await this.#deps.tokens.forget(result.tokenKey);
      ctx.principal = { kind: "agent", agent: result.agent, tokenId: result.tokenId };
    } else {
      return this.fail(ctx, header === "" ? "no_credentials" : "malformed");
    }
    if (ctx.principal.kind !== route.role) await this.#forbid(ctx, route);
  }

  /** Refuses a blocked source before any work (for the bootstrap code). */
  async refuseBlockedSource(ctx: RequestContext): Promise<void> {
    const blocked = await this.#deps.sources.blockedFor(ctx.source, ctx.now);
    if (blocked > 0) {
      throw new KeyholeError("rate_limited", undefined, {
        retryAfterSeconds: retryAfterSeconds(blocked),
      });
    }
  }

  /**
   * Counts a failed authentication against the source (and token id), writes the throttled
   * `auth.failed` entry, and throws 401, or 429 once blocked.
   */
  async fail(
    ctx: RequestContext,
    reason: string,
    tokenKey: string | null = null,
    agentId = "",
  ): Promise<never> {
    const { sources, tokens, failures } = this.#deps;
    // A limiter that cannot count throws or falls back (pg-limiter.ts); either way this
    // request ends in an error below, never in success.
    const [bySource, byToken] = await Promise.all([
      sources.recordFailure(ctx.source, ctx.now),
      tokenKey === null ? 0 : tokens.recordFailure(tokenKey, ctx.now),
    ]);
    const blocked = Math.max(bySource, byToken);
    await failures.record({
      requestId: ctx.requestId,
      clientIp: ctx.clientIp,
      source: ctx.source,
      userAgent: ctx.userAgent,
      reason,
      agentId,
      tokenKey,
    });
    ctx.audited = true;
    if (blocked > 0) {
      throw new KeyholeError("rate_limited", undefined, {
        retryAfterSeconds: retryAfterSeconds(blocked),
      });
    }
    throw new KeyholeError("unauthenticated");
  }

  /** A valid credential of the wrong role: one audit entry, then 403. */
  async #forbid(ctx: RequestContext, route: Route): Promise<never> {
    const agentId = ctx.principal?.kind === "agent" ? ctx.principal.agent.id : "";
    await ctx.audit((request) =>
      this.#deps.store.appendAudit({
        ...request,
        action: "auth.failed",
        result: "denied",
        agentId,
        secretId: "",
        secretVersion: 0,
        detail: `forbidden ${route.method} ${route.pattern}`,
      }),
    );
    throw new KeyholeError("forbidden");
  }
}
