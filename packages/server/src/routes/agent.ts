/**
 * Agent routes: who am I, which secrets can I fetch, and the fetch itself. The fetch answers
 * `404` alike for a missing secret, one not granted, an expired grant, or no wrap at the current
 * version, so an agent cannot probe which names exist; the audit entry tells the owner which.
 */
import {
  type AgentSecretListResponse,
  type AgentSecretResponse,
  type AgentSelfResponse,
  encodeBase64url,
  KeyholeError,
} from "@keyhole/core";
import type { RequestContext } from "../http/context.js";
import type { Route } from "../http/router.js";
import type { AgentPrincipal, Store } from "../store/store.js";
import { checkNoBody, name } from "../validate.js";
import type { VaultState } from "../vault-state.js";

/** What the agent routes use. */
export interface AgentDeps {
  readonly store: Pick<Store, "agentSelf" | "listSecretsForAgent" | "getSecretForAgent">;
  readonly vault: VaultState;
}

function principalOf(ctx: RequestContext): AgentPrincipal {
  if (ctx.principal?.kind !== "agent") throw new KeyholeError("forbidden");
  return { agentId: ctx.principal.agent.id, tokenId: ctx.principal.tokenId };
}

/** `GET /v1/agent/self`, `GET /v1/agent/secrets`, `GET /v1/agent/secrets/:name`. */
export function agentRoutes(deps: AgentDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: "/v1/agent/self",
      role: "agent",
      action: "agent.self",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const owner = await deps.vault.owner();
        const agent = await ctx.audit((r) => deps.store.agentSelf(principalOf(ctx), ctx.now, r));
        const body: AgentSelfResponse = {
          vault_id: owner.vaultId,
          agent_id: agent.id,
          name: agent.name,
          owner_sign_pk: encodeBase64url(owner.ownerSignPk),
          expires_at: agent.expiresAt,
        };
        return { status: 200, body };
      },
    },
    {
      method: "GET",
      pattern: "/v1/agent/secrets",
      role: "agent",
      action: "secret.list",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const secrets = await ctx.audit((r) =>
          deps.store.listSecretsForAgent(principalOf(ctx), ctx.now, r),
        );
        const body: AgentSecretListResponse = { secrets };
        return { status: 200, body };
      },
    },
    {
      method: "GET",
      pattern: "/v1/agent/secrets/:name",
      role: "agent",
      action: "secret.read",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const secretName = name(ctx.param("name"), "name");
        const owner = await deps.vault.owner();
        const principal = principalOf(ctx);
        const found = await ctx.audit((r) =>
          deps.store.getSecretForAgent(principal, secretName, ctx.now, r),
        );
        if (found === null) throw new KeyholeError("not_found");
        const body: AgentSecretResponse = {
          vault_id: owner.vaultId,
          agent_id: principal.agentId,
          owner_sign_pk: encodeBase64url(owner.ownerSignPk),
          secret_id: found.secret.id,
          name: found.secret.name,
          version: found.secret.version,
          value: encodeBase64url(found.value),
          wrap: encodeBase64url(found.grant.wrap),
          grant: {
            issued_at: found.grant.issuedAt,
            not_after: found.grant.notAfter,
            allowed_hosts: [...found.grant.allowedHosts],
            sig: encodeBase64url(found.grant.sig),
          },
        };
        return { status: 200, body };
      },
    },
  ];
}
