/**
 * Checks the shape of every server answer the owner client uses, before any field is trusted.
 * The server is not trusted: a malformed answer is `untrusted_server`, never a crash halfway
 * through a re-wrap. Signatures are checked elsewhere (verify.ts); this is only types and
 * canonical base64url.
 */
import type {
  AgentRevokeResponse,
  AgentView,
  AuditEntryView,
  CheckpointView,
  GrantView,
  InfoResponse,
  InitResponse,
  SecretGrantee,
  SecretSummary,
  SecretView,
} from "@keyhole/core";
import { isId, KeyholeError, tryDecodeBase64url } from "@keyhole/core";

/**
 * `GET /v1/owner/secrets/:name`. `owner_sig` is null only on versions stored before servers
 * kept it; such a version parses (so `secret set` can replace it) but is never opened.
 */
export type OwnerSecretView = SecretView;

/** `GET /v1/owner/agents/:name`. */
export interface AgentDetail extends AgentView {
  readonly grants: GrantView[];
}

/** One version in a secret's history. */
export interface VersionView {
  readonly version: number;
  readonly created_at: number;
  readonly size: number;
}

type Json = Record<string, unknown>;

function bad(field: string): never {
  throw new KeyholeError("untrusted_server", `the server's answer is malformed (${field})`);
}

function obj(value: unknown, field: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) bad(field);
  return value as Json;
}

function str(o: Json, key: string): string {
  const value = o[key];
  if (typeof value !== "string") bad(key);
  return value;
}

function int(o: Json, key: string): number {
  const value = o[key];
  if (!Number.isSafeInteger(value) || (value as number) < 0) bad(key);
  return value as number;
}

function intOrNull(o: Json, key: string): number | null {
  return o[key] === null ? null : int(o, key);
}

function bool(o: Json, key: string): boolean {
  const value = o[key];
  if (typeof value !== "boolean") bad(key);
  return value;
}

function b64(o: Json, key: string, length?: number): string {
  const value = str(o, key);
  const bytes = tryDecodeBase64url(value);
  if (bytes === null || (length !== undefined && bytes.length !== length)) bad(key);
  return value;
}

function strings(o: Json, key: string): string[] {
  const value = o[key];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) bad(key);
  return value as string[];
}

function list<T>(value: unknown, key: string, item: (v: unknown) => T): T[] {
  const o = obj(value, key);
  const items = o[key];
  if (!Array.isArray(items)) bad(key);
  return items.map(item);
}

function id(o: Json, key: string, kind: "vault" | "agent" | "secret"): string {
  const value = o[key];
  if (!isId(kind, value)) bad(key);
  return value;
}

/** Decodes a field already checked by this module. */
export function bytes(text: string): Uint8Array {
  return tryDecodeBase64url(text) ?? bad("base64url");
}

/** `GET /v1/info`. */
export function parseInfo(value: unknown): InfoResponse {
  const o = obj(value, "info");
  const ownerPk = o.owner_sign_pk === null ? null : b64(o, "owner_sign_pk", 32);
  return {
    vault_id: id(o, "vault_id", "vault"),
    initialized: bool(o, "initialized"),
    owner_sign_pk: ownerPk,
    audit_pk: b64(o, "audit_pk", 32),
    server_version: str(o, "server_version"),
  };
}

/** `POST /v1/init`. */
export function parseInitResponse(value: unknown): InitResponse {
  const o = obj(value, "init");
  return { vault_id: id(o, "vault_id", "vault"), audit_pk: b64(o, "audit_pk", 32) };
}

function parseGrantee(value: unknown): SecretGrantee {
  const o = obj(value, "grants");
  return {
    agent_id: id(o, "agent_id", "agent"),
    agent_name: str(o, "agent_name"),
    enc_pk: b64(o, "enc_pk", 32),
    key_sig: b64(o, "key_sig", 64),
    agent_created_at: int(o, "agent_created_at"),
    not_after: int(o, "not_after"),
    allowed_hosts: strings(o, "allowed_hosts"),
  };
}

/** `GET /v1/owner/secrets/:name`. */
export function parseSecretView(value: unknown): OwnerSecretView {
  const o = obj(value, "secret");
  const grants = o.grants;
  if (!Array.isArray(grants)) bad("grants");
  const view: OwnerSecretView = {
    id: id(o, "id", "secret"),
    name: str(o, "name"),
    version: int(o, "version"),
    value: b64(o, "value"),
    owner_wrap: b64(o, "owner_wrap"),
    created_at: int(o, "created_at"),
    updated_at: int(o, "updated_at"),
    owner_sig: o.owner_sig === null ? null : b64(o, "owner_sig", 64),
    rotation_recommended: bool(o, "rotation_recommended"),
    grants: grants.map(parseGrantee),
  };
  if (view.version < 1) bad("version");
  return view;
}

/** One `AgentView`. */
export function parseAgentView(value: unknown): AgentView {
  const o = obj(value, "agent");
  return {
    id: id(o, "id", "agent"),
    name: str(o, "name"),
    enc_pk: b64(o, "enc_pk", 32),
    created_at: int(o, "created_at"),
    key_sig: b64(o, "key_sig", 64),
    expires_at: intOrNull(o, "expires_at"),
    allowed_cidrs: strings(o, "allowed_cidrs"),
    revoked_at: intOrNull(o, "revoked_at"),
    last_used_at: intOrNull(o, "last_used_at"),
    grant_count: int(o, "grant_count"),
  };
}

/** One `GrantView`. */
export function parseGrantView(value: unknown): GrantView {
  const o = obj(value, "grant");
  return {
    agent_id: id(o, "agent_id", "agent"),
    agent_name: str(o, "agent_name"),
    secret_id: id(o, "secret_id", "secret"),
    secret_name: str(o, "secret_name"),
    version: int(o, "version"),
    issued_at: int(o, "issued_at"),
    not_after: int(o, "not_after"),
    allowed_hosts: strings(o, "allowed_hosts"),
    created_at: int(o, "created_at"),
    max_uses: int(o, "max_uses"),
    uses: int(o, "uses"),
  };
}

/** `GET /v1/owner/agents/:name`. */
export function parseAgentDetail(value: unknown): AgentDetail {
  const agent = parseAgentView(value);
  return { ...agent, grants: list(value, "grants", parseGrantView) };
}

/** `GET /v1/owner/agents`. */
export function parseAgentList(value: unknown): AgentView[] {
  return list(value, "agents", parseAgentView);
}

/** `GET /v1/owner/grants`. */
export function parseGrantList(value: unknown): GrantView[] {
  return list(value, "grants", parseGrantView);
}

/** `GET /v1/owner/secrets`. */
export function parseSecretList(value: unknown): SecretSummary[] {
  return list(value, "secrets", (v) => {
    const o = obj(v, "secrets");
    return {
      id: id(o, "id", "secret"),
      name: str(o, "name"),
      version: int(o, "version"),
      created_at: int(o, "created_at"),
      updated_at: int(o, "updated_at"),
      size: int(o, "size"),
      grant_count: int(o, "grant_count"),
      rotation_recommended: bool(o, "rotation_recommended"),
    };
  });
}

/** `GET /v1/owner/secrets/:name/history`. */
export function parseHistory(value: unknown): VersionView[] {
  return list(value, "versions", (v) => {
    const o = obj(v, "versions");
    return { version: int(o, "version"), created_at: int(o, "created_at"), size: int(o, "size") };
  });
}

/** `POST /v1/owner/agents/:name/revoke`. */
export function parseRevokeResponse(value: unknown): AgentRevokeResponse {
  const o = obj(value, "revoke");
  return {
    agent: parseAgentView(o.agent),
    blast_radius: list(value, "blast_radius", (v) => {
      const e = obj(v, "blast_radius");
      return {
        secret: str(e, "secret"),
        granted: bool(e, "granted"),
        reads: int(e, "reads"),
        first_read_at: intOrNull(e, "first_read_at"),
        last_read_at: intOrNull(e, "last_read_at"),
      };
    }),
  };
}

const ACTOR_TYPES = ["owner", "agent", "anonymous"] as const;

/** `GET /v1/owner/audit`. */
export function parseAuditPage(value: unknown): { entries: AuditEntryView[]; next: number | null } {
  const o = obj(value, "audit");
  const entries = list(value, "entries", (v) => {
    const e = obj(v, "entries");
    const actorType = e.actor_type;
    if (!ACTOR_TYPES.includes(actorType as (typeof ACTOR_TYPES)[number])) bad("actor_type");
    return {
      seq: int(e, "seq"),
      ts: int(e, "ts"),
      request_id: str(e, "request_id"),
      actor_type: actorType as AuditEntryView["actor_type"],
      actor_id: str(e, "actor_id"),
      action: str(e, "action"),
      result: str(e, "result"),
      agent_id: str(e, "agent_id"),
      secret_id: str(e, "secret_id"),
      secret_version: int(e, "secret_version"),
      client_ip: str(e, "client_ip"),
      user_agent: str(e, "user_agent"),
      detail: str(e, "detail"),
      hash: b64(e, "hash", 32),
    };
  });
  return { entries, next: intOrNull(o, "next") };
}

/** `GET /v1/owner/audit/checkpoint`. */
export function parseCheckpoint(value: unknown): CheckpointView {
  const o = obj(value, "checkpoint");
  return {
    log_id: str(o, "log_id"),
    size: int(o, "size"),
    head: b64(o, "head", 32),
    sig: b64(o, "sig", 64),
    audit_pk: b64(o, "audit_pk", 32),
  };
}

/** `PUT /v1/owner/secrets/:name`. */
export function parsePutResponse(value: unknown): { id: string; name: string; version: number } {
  const o = obj(value, "secret");
  return { id: id(o, "id", "secret"), name: str(o, "name"), version: int(o, "version") };
}
