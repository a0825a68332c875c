/**
 * Row shapes of the SQLite schema and their mapping to the store's records. BLOBs come back as
 * `Buffer`; records hold plain `Uint8Array` copies so callers never share SQLite's memory.
 */
import { isKeyholeError, KeyholeError } from "@keyhole/core";
import type {
  AgentRecord,
  AgentSummary,
  AuditRecord,
  GrantDetail,
  GrantRecord,
  SecretRecord,
  SecretVersionRecord,
  VaultRecord,
} from "./store.js";

/** Named statement parameters. */
export type Params = Record<string, unknown>;

/** The row of `vault`. */
export interface VaultRow {
  vault_id: string;
  created_at: number;
  owner_sign_pk: Buffer | null;
  owner_enc_pk: Buffer | null;
  initialized_at: number | null;
}

/** A row of `agents`. */
export interface AgentRow {
  id: string;
  name: string;
  enc_pk: Buffer;
  created_at: number;
  key_sig: Buffer;
  expires_at: number | null;
  /** A JSON array of canonical CIDR text (migration 3). */
  allowed_cidrs: string;
  revoked_at: number | null;
  last_used_at: number | null;
  registered_at: number;
}

/** A row of `secrets`. */
export interface SecretRow {
  id: string;
  name: string;
  current_version: number;
  created_at: number;
  updated_at: number;
  rotation_recommended: number;
}

/** A row of `secret_versions`. */
export interface VersionRow {
  secret_id: string;
  version: number;
  value: Buffer;
  owner_wrap: Buffer;
  /** NULL on versions written before migration 2. */
  owner_sig: Buffer | null;
  created_at: number;
}

/** A row of `grants`. */
export interface GrantRow {
  agent_id: string;
  secret_id: string;
  version: number;
  wrap: Buffer;
  issued_at: number;
  not_after: number;
  allowed_hosts: string;
  max_uses: number;
  uses: number;
  sig: Buffer;
  created_at: number;
}

/** A grant row with its agent and secret names. */
export type GrantDetailRow = GrantRow & { agent_name: string; secret_name: string };

/** A row of `audit`. */
export interface AuditRow {
  seq: number;
  ts: number;
  request_id: string;
  actor_type: string;
  actor_id: string;
  action: string;
  result: string;
  agent_id: string;
  secret_id: string;
  secret_version: number;
  client_ip: string;
  user_agent: string;
  detail: string;
  hash: Buffer;
}

/** A grant row `g` joined with its agent `a` is active when neither has expired nor been revoked. */
export const ACTIVE_GRANT = `a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > @now)
  AND (g.not_after = 0 OR g.not_after > @now)`;

/** Agents with their active grant count (0 once revoked or expired); needs `@now`. */
export const AGENT_SUMMARY = `SELECT a.*, CASE WHEN a.revoked_at IS NULL
    AND (a.expires_at IS NULL OR a.expires_at > @now)
  THEN (SELECT COUNT(*) FROM grants g WHERE g.agent_id = a.id
    AND (g.not_after = 0 OR g.not_after > @now)) ELSE 0 END AS grant_count
  FROM agents a`;

/** What a stored grant keeps when it is re-wrapped: its first creation and its read budget. */
export interface GrantKept {
  readonly createdAt: number;
  readonly maxUses: number;
  readonly uses: number;
}

/** A brand-new grant's kept part. */
export function newGrantKept(now: number, maxUses = 0): GrantKept {
  return { createdAt: now, maxUses, uses: 0 };
}

/** The kept part of the grants in `rows`, by `key` (agent or secret id), for a re-wrap. */
export function keptByKey(
  rows: readonly GrantRow[],
  key: (row: GrantRow) => string,
): Map<string, GrantKept> {
  return new Map(
    rows.map((row) => [
      key(row),
      { createdAt: row.created_at, maxUses: row.max_uses, uses: row.uses },
    ]),
  );
}

/** Grants with their agent and secret names. */
export const GRANT_DETAIL = `SELECT g.*, a.name AS agent_name, s.name AS secret_name
  FROM grants g JOIN agents a ON a.id = g.agent_id JOIN secrets s ON s.id = g.secret_id`;

// SQLite result codes that mean "storage trouble, try later" rather than "a bug".
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOLFS)/;

/** Storage trouble becomes `unavailable` (503); KeyholeErrors and bugs pass through. */
export function translateError(error: unknown): unknown {
  if (isKeyholeError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && UNAVAILABLE.test(code)) return new KeyholeError("unavailable");
  return error;
}

/** True when both lists hold the same distinct strings. */
export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}

/** `@p0, @p1, …` for an `IN (…)` list, binding the values into `params`. */
export function placeholders(prefix: string, values: readonly string[], params: Params): string {
  if (values.length === 0) return "NULL";
  return values
    .map((value, i) => {
      params[`${prefix}${i}`] = value;
      return `@${prefix}${i}`;
    })
    .join(", ");
}

/** A row the transaction itself just wrote or checked: its absence is a bug. */
export function required<T>(value: T | null | undefined): T {
  if (value === null || value === undefined)
    throw new Error("a row vanished inside its transaction");
  return value;
}

/** Maps a row, or gives null when there is none. */
export function nullable<R, T>(row: R | undefined, map: (row: R) => T): T | null {
  return row === undefined ? null : map(row);
}

/** better-sqlite3 binds `Buffer`s as BLOBs (not plain `Uint8Array`s). */
export function blob(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** A BLOB as a plain `Uint8Array` copy. */
export function bytes(value: Buffer): Uint8Array {
  return new Uint8Array(value);
}

/** A stored host or CIDR list (a JSON array of strings written by the store itself). */
export function parseStringList(text: string): string[] {
  return JSON.parse(text) as string[];
}

/** Row → record. */
export function toVault(row: VaultRow): VaultRecord {
  return {
    vaultId: row.vault_id,
    createdAt: row.created_at,
    ownerSignPk: row.owner_sign_pk ? bytes(row.owner_sign_pk) : null,
    ownerEncPk: row.owner_enc_pk ? bytes(row.owner_enc_pk) : null,
    initializedAt: row.initialized_at,
  };
}

/** Row → record. */
export function toAgent(row: AgentRow): AgentRecord {
  return {
    id: row.id,
    name: row.name,
    encPk: bytes(row.enc_pk),
    createdAt: row.created_at,
    keySig: bytes(row.key_sig),
    expiresAt: row.expires_at,
    allowedCidrs: parseStringList(row.allowed_cidrs),
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    registeredAt: row.registered_at,
  };
}

/** Row → record. */
export function toAgentSummary(row: AgentRow & { grant_count: number }): AgentSummary {
  return { ...toAgent(row), grantCount: row.grant_count };
}

/** Row → record. */
export function toSecret(row: SecretRow): SecretRecord {
  return {
    id: row.id,
    name: row.name,
    version: row.current_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    rotationRecommended: row.rotation_recommended !== 0,
  };
}

/** Row → record. */
export function toVersion(row: VersionRow): SecretVersionRecord {
  return {
    secretId: row.secret_id,
    version: row.version,
    value: bytes(row.value),
    ownerWrap: bytes(row.owner_wrap),
    ownerSig: row.owner_sig === null ? null : bytes(row.owner_sig),
    createdAt: row.created_at,
  };
}

/** Row → record. */
export function toGrant(row: GrantRow): GrantRecord {
  return {
    agentId: row.agent_id,
    secretId: row.secret_id,
    version: row.version,
    wrap: bytes(row.wrap),
    issuedAt: row.issued_at,
    notAfter: row.not_after,
    allowedHosts: parseStringList(row.allowed_hosts),
    sig: bytes(row.sig),
    createdAt: row.created_at,
    maxUses: row.max_uses,
    uses: row.uses,
  };
}

/** Row → record. */
export function toGrantDetail(row: GrantDetailRow): GrantDetail {
  return { ...toGrant(row), agentName: row.agent_name, secretName: row.secret_name };
}

/** Row → record. */
export function toAudit(row: AuditRow): AuditRecord {
  return {
    seq: row.seq,
    ts: row.ts,
    requestId: row.request_id,
    actorType: row.actor_type as AuditRecord["actorType"],
    actorId: row.actor_id,
    action: row.action,
    result: row.result,
    agentId: row.agent_id,
    secretId: row.secret_id,
    secretVersion: row.secret_version,
    clientIp: row.client_ip,
    userAgent: row.user_agent,
    detail: row.detail,
    hash: bytes(row.hash),
  };
}
