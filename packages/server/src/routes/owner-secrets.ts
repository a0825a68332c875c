/**
 * Owner routes for secrets: list, read (the owner's wrap and what it needs to re-wrap for each
 * grantee), write a new version with compare-and-set, history, delete.
 */
import { encodeBase64url, KeyholeError, type SecretView } from "@keyhole/core";
import { MAX_GRANTS_BODY_BYTES } from "../http/body.js";
import type { Route } from "../http/router.js";
import type { NewGrant, Store } from "../store/store.js";
import { checkBody, checkNoBody, name } from "../validate.js";
import type { VaultState } from "../vault-state.js";
import { checkGrantUpload, checkOwnerSig, checkWrapRecipient, valueDekId } from "./grant-checks.js";
import { granteeView, secretSummaryView } from "./views.js";
import { secretPutCheck } from "./wire-checks.js";

/** What the secret routes of the owner use. */
export interface OwnerSecretDeps {
  readonly store: Pick<
    Store,
    | "listSecrets"
    | "readSecretForOwner"
    | "listSecretVersions"
    | "putSecretVersion"
    | "deleteSecret"
    | "getAgent"
  >;
  readonly vault: VaultState;
}

/** The routes under `/v1/owner/secrets`. */
export function ownerSecretRoutes(deps: OwnerSecretDeps): Route[] {
  const { store } = deps;
  return [
    {
      method: "GET",
      pattern: "/v1/owner/secrets",
      role: "owner",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const secrets = await store.listSecrets(ctx.now);
        return { status: 200, body: { secrets: secrets.map(secretSummaryView) } };
      },
    },
    {
      method: "GET",
      pattern: "/v1/owner/secrets/:name",
      role: "owner",
      action: "secret.owner_read",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const secretName = name(ctx.param("name"), "name");
        const read = await ctx.audit((r) => store.readSecretForOwner(secretName, ctx.now, r));
        if (read === null) throw new KeyholeError("not_found", "no such secret");
        const body: SecretView = {
          id: read.secret.id,
          name: read.secret.name,
          version: read.secret.version,
          value: encodeBase64url(read.current.value),
          owner_wrap: encodeBase64url(read.current.ownerWrap),
          owner_sig: read.current.ownerSig === null ? null : encodeBase64url(read.current.ownerSig),
          created_at: read.secret.createdAt,
          updated_at: read.secret.updatedAt,
          rotation_recommended: read.secret.rotationRecommended,
          grants: read.grantees.map(granteeView),
        };
        return { status: 200, body };
      },
    },
    {
      method: "PUT",
      pattern: "/v1/owner/secrets/:name",
      role: "owner",
      action: "secret.write",
      maxBodyBytes: MAX_GRANTS_BODY_BYTES,
      handler: async (ctx) => {
        const secretName = name(ctx.param("name"), "name");
        const body = checkBody(ctx.body(), secretPutCheck);
        const owner = await deps.vault.owner();
        if (body.version !== body.expected_version + 1) {
          throw new KeyholeError("bad_request", "version must be expected_version + 1");
        }
        valueDekId(body.value);
        await checkWrapRecipient(body.owner_wrap, owner.ownerEncPk, "owner_wrap");
        if (new Set(body.grants.map((g) => g.agent_id)).size !== body.grants.length) {
          throw new KeyholeError("bad_request", "duplicate grant");
        }
        const target = {
          secretId: body.id,
          secretName,
          version: body.version,
          value: body.value,
        };
        await checkOwnerSig(owner, target, body.owner_wrap, body.owner_sig);
        const grants: NewGrant[] = [];
        for (const upload of body.grants) {
          if (upload.secret_id !== body.id || upload.version !== body.version) {
            throw new KeyholeError("bad_request", "a grant names another secret or version");
          }
          const agent = await store.getAgent(upload.agent_id, ctx.now);
          // An agent unknown, revoked or expired holds no active grant: the set cannot match.
          if (agent === null || agent.revokedAt !== null || agent.grantCount === 0) {
            throw new KeyholeError("conflict", "the grant set changed");
          }
          grants.push(
            await checkGrantUpload(
              owner,
              upload,
              target,
              { agentId: agent.id, encPk: agent.encPk },
              ctx.now,
            ),
          );
        }
        const result = await ctx.audit((r) =>
          store.putSecretVersion(
            {
              id: body.id,
              name: secretName,
              expectedVersion: body.expected_version,
              version: body.version,
              value: body.value,
              ownerWrap: body.owner_wrap,
              ownerSig: body.owner_sig,
              grants,
            },
            ctx.now,
            r,
          ),
        );
        return {
          status: result.created ? 201 : 200,
          body: { id: result.id, name: result.name, version: result.version },
        };
      },
    },
    {
      method: "GET",
      pattern: "/v1/owner/secrets/:name/history",
      role: "owner",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const versions = await store.listSecretVersions(name(ctx.param("name"), "name"));
        if (versions === null) throw new KeyholeError("not_found", "no such secret");
        return {
          status: 200,
          body: {
            versions: versions.map((v) => ({
              version: v.version,
              created_at: v.createdAt,
              size: v.size,
            })),
          },
        };
      },
    },
    {
      method: "DELETE",
      pattern: "/v1/owner/secrets/:name",
      role: "owner",
      action: "secret.delete",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const secretName = name(ctx.param("name"), "name");
        const deleted = await ctx.audit((r) => store.deleteSecret(secretName, r));
        if (!deleted) throw new KeyholeError("not_found", "no such secret");
        return { status: 200, body: { deleted: true } };
      },
    },
  ];
}
