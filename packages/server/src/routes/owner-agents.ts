/**
 * Owner routes for agents: list, show, create, rotate, revoke. Every key statement and grant the
 * owner uploads is verified first (`grant-checks.ts`); the store then re-checks, inside its
 * transaction, that nothing it relied on changed meanwhile. The token ids a revoke or rotate
 * retires go to `revoked-tokens` after the commit (auth/revoked-tokens.ts).
 */
import { KeyholeError } from "@keyhole/core";
import type { PepperRing } from "../auth/pepper.js";
import type { RevokedTokens } from "../auth/revoked-tokens.js";
import { MAX_GRANTS_BODY_BYTES } from "../http/body.js";
import type { RequestContext } from "../http/context.js";
import type { Route } from "../http/router.js";
import type { Logger } from "../log.js";
import type { AgentSummary, NewGrant, Store } from "../store/store.js";
import { crashPoint } from "../test-crash.js";
import { checkBody, checkNoBody, name } from "../validate.js";
import type { OwnerKeys, VaultState } from "../vault-state.js";
import { checkAgentKey, checkGrantUpload, type GrantRecipient } from "./grant-checks.js";
import { agentView, blastRadiusView, grantView } from "./views.js";
import { agentCreateCheck, agentRotateCheck, type GrantUploadBody } from "./wire-checks.js";

/** How far past the server clock an agent key's `created_at` may be (owner requests: ±60 s). */
const MAX_KEY_CLOCK_SKEW_MS = 5 * 60_000;

/** What the agent routes of the owner use. */
export interface OwnerAgentDeps {
  readonly store: Pick<
    Store,
    | "listAgents"
    | "findAgentByName"
    | "listGrants"
    | "listActiveGrantsForAgent"
    | "getSecretById"
    | "getSecretVersion"
    | "createAgent"
    | "rotateAgent"
    | "revokeAgent"
  >;
  readonly vault: VaultState;
  readonly peppers: PepperRing;
  readonly revoked: Pick<RevokedTokens, "has" | "record">;
  readonly logger: Logger;
}

/** The agent routes under `/v1/owner/agents`. */
export function ownerAgentRoutes(deps: OwnerAgentDeps): Route[] {
  const { store } = deps;

  /** Verifies each upload against the current version of its secret, for `recipient`. */
  async function checkUploads(
    owner: OwnerKeys,
    uploads: readonly GrantUploadBody[],
    recipient: GrantRecipient,
    now: number,
  ): Promise<NewGrant[]> {
    if (new Set(uploads.map((g) => g.secret_id)).size !== uploads.length) {
      throw new KeyholeError("bad_request", "duplicate grant");
    }
    const out: NewGrant[] = [];
    for (const upload of uploads) {
      const secret = await store.getSecretById(upload.secret_id);
      if (secret === null) throw new KeyholeError("not_found", "no such secret");
      const version = await store.getSecretVersion(secret.id, secret.version);
      if (version === null) throw new KeyholeError("conflict");
      out.push(
        await checkGrantUpload(
          owner,
          upload,
          {
            secretId: secret.id,
            secretName: secret.name,
            version: secret.version,
            value: version.value,
          },
          recipient,
          now,
        ),
      );
    }
    return out;
  }

  /**
   * A new key may not claim a time far past the server's clock. The store refuses a rotate to
   * a key older than the current one (a delayed request); without this bound a key stamped in
   * the future would make every later rotate look older, and a leaked token unrotatable.
   */
  function checkKeyTime(createdAt: number, now: number): void {
    if (createdAt > now + MAX_KEY_CLOCK_SKEW_MS) {
      throw new KeyholeError("bad_request", "created_at is in the future (check the clock)");
    }
  }

  /** A token id once retired is never registered again. */
  function checkFreshToken(tokenId: Uint8Array): void {
    if (deps.revoked.has(tokenId)) throw new KeyholeError("conflict", "the token id is taken");
  }

  /**
   * Appends ids the store just retired to `revoked-tokens`. The revoke or rotate has committed
   * and the token is already dead, so a failed append is logged, not answered as a failure:
   * the ids stay refused in memory, the database records them, and the next append or start-up
   * writes them to the file.
   */
  function recordRetired(tokenIds: readonly Uint8Array[], requestId: string): void {
    try {
      deps.revoked.record(tokenIds);
    } catch (error) {
      deps.logger.unexpected("could not append to revoked-tokens", error, requestId);
    }
  }

  async function activeAgent(ctx: RequestContext): Promise<AgentSummary> {
    const agent = await store.findAgentByName(name(ctx.param("name"), "name"), ctx.now);
    if (agent === null || agent.revokedAt !== null) {
      throw new KeyholeError("not_found", "no such agent");
    }
    return agent;
  }

  return [
    {
      method: "GET",
      pattern: "/v1/owner/agents",
      role: "owner",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        return { status: 200, body: { agents: (await store.listAgents(ctx.now)).map(agentView) } };
      },
    },
    {
      method: "GET",
      pattern: "/v1/owner/agents/:name",
      role: "owner",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const agent = await store.findAgentByName(name(ctx.param("name"), "name"), ctx.now);
        if (agent === null) throw new KeyholeError("not_found", "no such agent");
        const grants = await store.listGrants({ agentIds: [agent.id] });
        return { status: 200, body: { ...agentView(agent), grants: grants.map(grantView) } };
      },
    },
    {
      method: "POST",
      pattern: "/v1/owner/agents",
      role: "owner",
      action: "agent.create",
      maxBodyBytes: MAX_GRANTS_BODY_BYTES,
      handler: async (ctx) => {
        const body = checkBody(ctx.body(), agentCreateCheck);
        checkFreshToken(body.token_id);
        checkKeyTime(body.created_at, ctx.now);
        const owner = await deps.vault.owner();
        await checkAgentKey(owner, body.id, body.enc_pk, body.created_at, body.key_sig);
        const grants = await checkUploads(
          owner,
          body.grants,
          { agentId: body.id, encPk: body.enc_pk },
          ctx.now,
        );
        const token = deps.peppers.makeVerifier(body.token_id, body.auth_key);
        const agent = await ctx.audit((r) =>
          store.createAgent(
            {
              id: body.id,
              name: body.name,
              encPk: body.enc_pk,
              createdAt: body.created_at,
              keySig: body.key_sig,
              expiresAt: body.expires_at,
              allowedCidrs: body.allowed_cidrs,
            },
            { tokenId: body.token_id, ...token },
            grants,
            ctx.now,
            r,
          ),
        );
        return { status: 201, body: agentView(agent) };
      },
    },
    {
      method: "POST",
      pattern: "/v1/owner/agents/:name/rotate",
      role: "owner",
      action: "agent.rotate",
      maxBodyBytes: MAX_GRANTS_BODY_BYTES,
      handler: async (ctx) => {
        const body = checkBody(ctx.body(), agentRotateCheck);
        checkFreshToken(body.token_id);
        checkKeyTime(body.created_at, ctx.now);
        const agent = await activeAgent(ctx);
        const owner = await deps.vault.owner();
        await checkAgentKey(owner, agent.id, body.enc_pk, body.created_at, body.key_sig);
        const active = await store.listActiveGrantsForAgent(agent.id, ctx.now);
        const wanted = new Set(active.map((g) => g.secretId));
        if (
          wanted.size !== body.grants.length ||
          body.grants.some((g) => !wanted.has(g.secret_id))
        ) {
          throw new KeyholeError(
            "conflict",
            "the grants must cover exactly the agent's active grants",
          );
        }
        const grants = await checkUploads(
          owner,
          body.grants,
          { agentId: agent.id, encPk: body.enc_pk },
          ctx.now,
        );
        const token = deps.peppers.makeVerifier(body.token_id, body.auth_key);
        // Test-only kill points around the commit (test-crash.ts); no-ops unless a test asks.
        crashPoint("agent.rotate:before-commit");
        const rotated = await ctx.audit((r) =>
          store.rotateAgent(
            {
              agentId: agent.id,
              expectedEncPk: agent.encPk,
              encPk: body.enc_pk,
              createdAt: body.created_at,
              keySig: body.key_sig,
            },
            { tokenId: body.token_id, ...token },
            grants,
            ctx.now,
            r,
          ),
        );
        crashPoint("agent.rotate:after-commit");
        if (rotated === null) throw new KeyholeError("not_found", "no such agent");
        recordRetired(rotated.retiredTokenIds, ctx.requestId);
        return { status: 200, body: agentView(rotated.agent) };
      },
    },
    {
      method: "POST",
      pattern: "/v1/owner/agents/:name/revoke",
      role: "owner",
      action: "agent.revoke",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const agent = await store.findAgentByName(name(ctx.param("name"), "name"), ctx.now);
        if (agent === null) throw new KeyholeError("not_found", "no such agent");
        const result = await ctx.audit((r) => store.revokeAgent(agent.id, ctx.now, r));
        if (result === null) throw new KeyholeError("not_found", "no such agent");
        recordRetired(result.retiredTokenIds, ctx.requestId);
        return {
          status: 200,
          body: {
            agent: agentView(result.agent),
            blast_radius: result.blastRadius.map(blastRadiusView),
          },
        };
      },
    },
  ];
}
