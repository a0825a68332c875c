/**
 * Store records as the JSON shapes of docs/api.md (snake_case, byte strings in base64url).
 * Typed against core's wire types so the server and its clients cannot drift apart.
 */
import {
  type AgentView,
  type AuditEntryView,
  type BlastRadiusEntry as BlastRadiusView,
  encodeBase64url,
  type GrantView,
  type SecretGrantee as SecretGranteeView,
  type SecretSummary as SecretSummaryView,
} from "@keyhole/core";
import type {
  AgentSummary,
  AuditRecord,
  BlastRadiusEntry,
  GrantDetail,
  SecretGrantee,
  SecretSummary,
} from "../store/store.js";

/** `AgentView`. */
export function agentView(agent: AgentSummary): AgentView {
  return {
    id: agent.id,
    name: agent.name,
    enc_pk: encodeBase64url(agent.encPk),
    created_at: agent.createdAt,
    key_sig: encodeBase64url(agent.keySig),
    expires_at: agent.expiresAt,
    allowed_cidrs: [...agent.allowedCidrs],
    revoked_at: agent.revokedAt,
    last_used_at: agent.lastUsedAt,
    grant_count: agent.grantCount,
  };
}

/** `GrantView`. */
export function grantView(grant: GrantDetail): GrantView {
  return {
    agent_id: grant.agentId,
    agent_name: grant.agentName,
    secret_id: grant.secretId,
    secret_name: grant.secretName,
    version: grant.version,
    issued_at: grant.issuedAt,
    not_after: grant.notAfter,
    allowed_hosts: [...grant.allowedHosts],
    created_at: grant.createdAt,
    max_uses: grant.maxUses,
    uses: grant.uses,
  };
}

/** One secret of the owner's listing. */
export function secretSummaryView(secret: SecretSummary): SecretSummaryView {
  return {
    id: secret.id,
    name: secret.name,
    version: secret.version,
    created_at: secret.createdAt,
    updated_at: secret.updatedAt,
    size: secret.size,
    grant_count: secret.grantCount,
    rotation_recommended: secret.rotationRecommended,
  };
}

/** One grantee of a `SecretView`. */
export function granteeView(grantee: SecretGrantee): SecretGranteeView {
  return {
    agent_id: grantee.agentId,
    agent_name: grantee.agentName,
    enc_pk: encodeBase64url(grantee.encPk),
    key_sig: encodeBase64url(grantee.keySig),
    agent_created_at: grantee.agentCreatedAt,
    not_after: grantee.notAfter,
    allowed_hosts: [...grantee.allowedHosts],
  };
}

/** One line of a revoke's blast radius. */
export function blastRadiusView(entry: BlastRadiusEntry): BlastRadiusView {
  return {
    // A secret deleted since is named by its id: the audit log only ever held ids.
    secret: entry.secretName ?? entry.secretId,
    granted: entry.granted,
    reads: entry.reads,
    first_read_at: entry.firstReadAt,
    last_read_at: entry.lastReadAt,
  };
}

/** `AuditEntry`, its hash in base64url. */
export function auditEntryView(entry: AuditRecord): AuditEntryView {
  return {
    seq: entry.seq,
    ts: entry.ts,
    request_id: entry.requestId,
    actor_type: entry.actorType,
    actor_id: entry.actorId,
    action: entry.action,
    result: entry.result,
    agent_id: entry.agentId,
    secret_id: entry.secretId,
    secret_version: entry.secretVersion,
    client_ip: entry.clientIp,
    user_agent: entry.userAgent,
    detail: entry.detail,
    hash: encodeBase64url(entry.hash),
  };
}
