/**
 * An operation's audit entry before the store numbers and chains it: what the request supplies
 * (who, from where, when) joined with what the operation decided. Shared by both adapters.
 */
import type { AuditDraft, AuditRequest } from "./store.js";

/** What an operation decided about its own audit entry. */
export type AuditOutcome = Pick<AuditDraft, "action" | "result"> &
  Partial<Pick<AuditDraft, "agentId" | "secretId" | "secretVersion" | "detail">>;

/** The complete entry, unnumbered. */
export function auditDraft(request: AuditRequest, outcome: AuditOutcome): AuditDraft {
  return {
    ts: request.ts,
    requestId: request.requestId,
    actorType: request.actorType,
    actorId: request.actorId,
    clientIp: request.clientIp,
    userAgent: request.userAgent,
    action: outcome.action,
    result: outcome.result,
    agentId: outcome.agentId ?? "",
    secretId: outcome.secretId ?? "",
    secretVersion: outcome.secretVersion ?? 0,
    detail: outcome.detail ?? "",
  };
}
