/**
 * JSON shapes on the wire (docs/api.md). Byte strings are canonical base64url text here; times
 * are milliseconds since the epoch. These are types only: the server validates every body
 * strictly, and the SDK and CLI verify every signature before trusting a field.
 */

/** An error answer. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** `GET /v1/info`. */
export interface InfoResponse {
  vault_id: string;
  initialized: boolean;
  owner_sign_pk: string | null;
  audit_pk: string;
  server_version: string;
}

/** `POST /v1/init`. */
export interface InitRequest {
  bootstrap_code: string;
  owner_sign_pk: string;
  owner_enc_pk: string;
  proof: string;
}

/** `POST /v1/init` answer. */
export interface InitResponse {
  vault_id: string;
  audit_pk: string;
}

/** `GET /v1/agent/self`. */
export interface AgentSelfResponse {
  vault_id: string;
  agent_id: string;
  name: string;
  owner_sign_pk: string;
  expires_at: number | null;
}

/** The signed grant fields returned with an agent's secret. */
export interface GrantSignature {
  issued_at: number;
  not_after: number;
  allowed_hosts: string[];
  sig: string;
}

/** `GET /v1/agent/secrets/:name`. */
export interface AgentSecretResponse {
  vault_id: string;
  agent_id: string;
  owner_sign_pk: string;
  secret_id: string;
  name: string;
  version: number;
  value: string;
  wrap: string;
  grant: GrantSignature;
}

/** `GET /v1/agent/secrets`. */
export interface AgentSecretListResponse {
  secrets: { name: string; version: number }[];
}

/** A wrap and signed grant for one agent and one secret version, uploaded by the owner. */
export interface GrantUpload {
  agent_id: string;
  secret_id: string;
  version: number;
  wrap: string;
  issued_at: number;
  not_after: number;
  allowed_hosts: string[];
  sig: string;
}

/** `POST /v1/owner/grants`: a grant upload with its read budget (0: no limit). */
export interface GrantAddRequest extends GrantUpload {
  max_uses: number;
}

/** An agent as the owner sees it. */
export interface AgentView {
  id: string;
  name: string;
  enc_pk: string;
  created_at: number;
  key_sig: string;
  expires_at: number | null;
  /** Canonical CIDR ranges its token is accepted from; empty means anywhere. */
  allowed_cidrs: string[];
  revoked_at: number | null;
  last_used_at: number | null;
  grant_count: number;
}

/** `POST /v1/owner/agents`. */
export interface AgentCreateRequest {
  id: string;
  name: string;
  enc_pk: string;
  created_at: number;
  key_sig: string;
  token_id: string;
  auth_key: string;
  expires_at: number | null;
  /** Canonical CIDR ranges (core `canonicalCidrs`); empty means anywhere. */
  allowed_cidrs: string[];
  grants: GrantUpload[];
}

/** `POST /v1/owner/agents/:name/rotate`. */
export interface AgentRotateRequest {
  enc_pk: string;
  created_at: number;
  key_sig: string;
  token_id: string;
  auth_key: string;
  grants: GrantUpload[];
}

/** A grant as the owner sees it. */
export interface GrantView {
  agent_id: string;
  agent_name: string;
  secret_id: string;
  secret_name: string;
  version: number;
  issued_at: number;
  not_after: number;
  allowed_hosts: string[];
  created_at: number;
  /** Reads allowed in all, 0 for no limit. */
  max_uses: number;
  /** Reads spent against `max_uses`. */
  uses: number;
}

/** One line of a revoked agent's blast radius. */
export interface BlastRadiusEntry {
  secret: string;
  granted: boolean;
  reads: number;
  first_read_at: number | null;
  last_read_at: number | null;
}

/** `POST /v1/owner/agents/:name/revoke` answer. */
export interface AgentRevokeResponse {
  agent: AgentView;
  blast_radius: BlastRadiusEntry[];
}

/** A secret in the owner's listing. */
export interface SecretSummary {
  id: string;
  name: string;
  version: number;
  created_at: number;
  updated_at: number;
  size: number;
  grant_count: number;
  rotation_recommended: boolean;
}

/** What the owner needs to re-wrap one granted agent. */
export interface SecretGrantee {
  agent_id: string;
  agent_name: string;
  enc_pk: string;
  key_sig: string;
  agent_created_at: number;
  not_after: number;
  allowed_hosts: string[];
}

/** `GET /v1/owner/secrets/:name`. */
export interface SecretView {
  id: string;
  name: string;
  version: number;
  value: string;
  owner_wrap: string;
  /** The owner's `KHG1` signature over its own wrap; null on versions older than the field. */
  owner_sig: string | null;
  created_at: number;
  updated_at: number;
  rotation_recommended: boolean;
  grants: SecretGrantee[];
}

/** `PUT /v1/owner/secrets/:name`. */
export interface SecretPutRequest {
  id: string;
  expected_version: number;
  version: number;
  value: string;
  owner_wrap: string;
  /** The owner's `KHG1` signature over its own wrap (docs/api.md). */
  owner_sig: string;
  grants: GrantUpload[];
}

/** One audit entry on the wire. */
export interface AuditEntryView {
  seq: number;
  ts: number;
  request_id: string;
  actor_type: "owner" | "agent" | "anonymous";
  actor_id: string;
  action: string;
  result: string;
  agent_id: string;
  secret_id: string;
  secret_version: number;
  client_ip: string;
  user_agent: string;
  detail: string;
  hash: string;
}

/** `GET /v1/owner/audit/checkpoint`. */
export interface CheckpointView {
  log_id: string;
  size: number;
  head: string;
  sig: string;
  audit_pk: string;
}
