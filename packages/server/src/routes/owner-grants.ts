/**
 * Owner routes for grants: list (optionally by agent name), add or replace one, remove one.
 * Removing a grant marks the secret rotation-recommended: the agent may have read it already.
 */
import { KeyholeError } from "@keyhole/core";
import type { Route } from "../http/router.js";
import type { Store } from "../store/store.js";
import { checkBody, checkNoBody, name } from "../validate.js";
import type { VaultState } from "../vault-state.js";
import { checkGrantUpload } from "./grant-checks.js";
import { grantView } from "./views.js";
import { grantAddCheck } from "./wire-checks.js";

/** What the grant routes use. */
export interface OwnerGrantDeps {
  readonly store: Pick<
    Store,
    | "listGrants"
    | "listAgentIdsByName"
    | "getAgent"
    | "findAgentByName"
    | "getSecretById"
    | "getSecretByName"
    | "getSecretVersion"
    | "addGrant"
    | "removeGrant"
  >;
  readonly vault: VaultState;
}

/** The routes under `/v1/owner/grants`. */
export function ownerGrantRoutes(deps: OwnerGrantDeps): Route[] {
  const { store } = deps;
  return [
    {
      method: "GET",
      pattern: "/v1/owner/grants",
      role: "owner",
      query: ["agent"],
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const agentName = ctx.query.get("agent");
        const filter =
          agentName === undefined
            ? {}
            : { agentIds: await store.listAgentIdsByName(name(agentName, "query.agent")) };
        return { status: 200, body: { grants: (await store.listGrants(filter)).map(grantView) } };
      },
    },
    {
      method: "POST",
      pattern: "/v1/owner/grants",
      role: "owner",
      action: "grant.add",
      handler: async (ctx) => {
        const body = checkBody(ctx.body(), grantAddCheck);
        const owner = await deps.vault.owner();
        const agent = await store.getAgent(body.agent_id, ctx.now);
        const active =
          agent !== null &&
          agent.revokedAt === null &&
          (agent.expiresAt === null || agent.expiresAt > ctx.now);
        if (!active) throw new KeyholeError("not_found", "no such agent");
        const secret = await store.getSecretById(body.secret_id);
        if (secret === null) throw new KeyholeError("not_found", "no such secret");
        const version = await store.getSecretVersion(secret.id, secret.version);
        if (version === null) throw new KeyholeError("conflict");
        const grant = await checkGrantUpload(
          owner,
          body,
          {
            secretId: secret.id,
            secretName: secret.name,
            version: secret.version,
            value: version.value,
          },
          { agentId: agent.id, encPk: agent.encPk },
          ctx.now,
        );
        const stored = await ctx.audit((r) =>
          store.addGrant({ ...grant, maxUses: body.max_uses }, ctx.now, r),
        );
        if (stored === null) throw new KeyholeError("not_found", "no such agent or secret");
        return { status: 201, body: grantView(stored) };
      },
    },
    {
      method: "DELETE",
      pattern: "/v1/owner/grants/:agent/:secret",
      role: "owner",
      action: "grant.remove",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const agentName = name(ctx.param("agent"), "agent");
        const secretName = name(ctx.param("secret"), "secret");
        const agent = await store.findAgentByName(agentName, ctx.now);
        if (agent === null || agent.revokedAt !== null) {
          throw new KeyholeError("not_found", "no such agent");
        }
        const secret = await store.getSecretByName(secretName);
        if (secret === null) throw new KeyholeError("not_found", "no such secret");
        const removed = await ctx.audit((r) => store.removeGrant(agent.id, secret.id, r));
        if (!removed) throw new KeyholeError("not_found", "no such grant");
        return { status: 200, body: { deleted: true } };
      },
    },
  ];
}
