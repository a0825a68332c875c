/**
 * Owner routes for the audit log: a filtered page of entries and a signed checkpoint of the
 * chain head. Reading the log is not itself audited: `audit --follow` would otherwise feed on
 * its own entries.
 */
import {
  type AuditEntryView,
  type CheckpointView,
  encodeBase64url,
  encodeCheckpoint,
  isId,
  isValidName,
  KeyholeError,
} from "@keyhole/core";
import type { AuditKey } from "../audit/audit-key.js";
import type { Route } from "../http/router.js";
import type { AuditFilter, Store } from "../store/store.js";
import { checkNoBody, int } from "../validate.js";
import type { VaultState } from "../vault-state.js";
import { auditEntryView } from "./views.js";

/** Default and largest page size. */
export const AUDIT_PAGE_DEFAULT = 100;
export const AUDIT_PAGE_MAX = 1000;

/** What the audit routes use. */
export interface OwnerAuditDeps {
  readonly store: Pick<Store, "listAudit" | "auditHead" | "listAgentIdsByName" | "getSecretByName">;
  readonly vault: VaultState;
  readonly auditKey: AuditKey;
}

function queryInt(
  value: string | undefined,
  field: string,
  min: number,
  max?: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value))
    throw new KeyholeError("bad_request", `${field}: expected an integer`);
  return int(min, max)(Number(value), field);
}

/** An agent or secret filter: a name, an id, or both when a name looks like an id. */
function checkRef(value: string, field: string): void {
  if (!isValidName(value)) throw new KeyholeError("bad_request", `${field}: invalid name`);
}

/** The routes under `/v1/owner/audit`. */
export function ownerAuditRoutes(deps: OwnerAuditDeps): Route[] {
  const { store } = deps;
  return [
    {
      method: "GET",
      pattern: "/v1/owner/audit",
      role: "owner",
      query: ["after", "limit", "agent", "secret", "since"],
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const q = ctx.query;
        const limit =
          queryInt(q.get("limit"), "query.limit", 1, AUDIT_PAGE_MAX) ?? AUDIT_PAGE_DEFAULT;
        const after = queryInt(q.get("after"), "query.after", 0);
        const since = queryInt(q.get("since"), "query.since", 0);
        const agent = q.get("agent");
        const secret = q.get("secret");
        let agentIds: string[] | undefined;
        let secretIds: string[] | undefined;
        if (agent !== undefined) {
          checkRef(agent, "query.agent");
          // Every agent that ever had the name (names are reused after a revoke), or the id.
          agentIds = [
            ...(await store.listAgentIdsByName(agent)),
            ...(isId("agent", agent) ? [agent] : []),
          ];
        }
        if (secret !== undefined) {
          checkRef(secret, "query.secret");
          const byName = await store.getSecretByName(secret);
          // A deleted secret is only findable by its id: the log keeps ids, not names.
          secretIds = [...(byName ? [byName.id] : []), ...(isId("secret", secret) ? [secret] : [])];
        }
        const filter: AuditFilter = {
          limit: limit + 1,
          ...(after === undefined ? {} : { after }),
          ...(since === undefined ? {} : { since }),
          ...(agentIds === undefined ? {} : { agentIds }),
          ...(secretIds === undefined ? {} : { secretIds }),
        };
        const rows = await store.listAudit(filter);
        const page = rows.slice(0, limit);
        const entries: AuditEntryView[] = page.map(auditEntryView);
        const next = rows.length > limit ? (page.at(-1)?.seq ?? null) : null;
        return { status: 200, body: { entries, next } };
      },
    },
    {
      method: "GET",
      pattern: "/v1/owner/audit/checkpoint",
      role: "owner",
      handler: async (ctx) => {
        checkNoBody(ctx.body());
        const { size, head } = await store.auditHead();
        const logId = deps.vault.vaultId;
        const body: CheckpointView = {
          log_id: logId,
          size,
          head: encodeBase64url(head),
          sig: encodeBase64url(deps.auditKey.sign(encodeCheckpoint(logId, size, head))),
          audit_pk: encodeBase64url(deps.auditKey.publicKey),
        };
        return { status: 200, body };
      },
    },
  ];
}
