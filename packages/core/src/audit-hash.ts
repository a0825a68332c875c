/**
 * The audit log's hash chain and checkpoints (FORMATS.md "Audit entry hash"):
 *
 *   leaf          = SHA-256(0x00 ‖ LP(canonical entry bytes))
 *   entry_hash[n] = SHA-256(entry_hash[n-1] ‖ leaf[n])          entry_hash[0] = 32 zero bytes
 *   checkpoint    = "keyhole/v1/audit\n" ‖ log_id "\n" ‖ size "\n" ‖ base64(entry_hash[size]) "\n"
 *
 * The 0x00 leaf prefix keeps leaves distinct from inner nodes should the chain become a Merkle
 * tree. SHA-256 is passed in: the server and CLI hash millions of entries synchronously with
 * `node:crypto`, and this package stays free of `node:*`.
 */
import { concatBytes, lp, u64, utf8 } from "./bytes.js";
import type { AuditEntryView } from "./wire.js";

/** A synchronous SHA-256, e.g. `(d) => createHash("sha256").update(d).digest()`. */
export type Sha256Sync = (data: Uint8Array) => Uint8Array;

/** The hash before the first entry. */
export const AUDIT_GENESIS: Uint8Array = new Uint8Array(32);

/** Who made a request. */
export type AuditActorType = "owner" | "agent" | "anonymous";

/**
 * The fields of one audit entry, in canonical order. Absent ids are "", absent versions 0,
 * so every entry has exactly one encoding. Never a value, token or auth key.
 */
export interface AuditFields {
  readonly seq: number;
  readonly ts: number;
  readonly requestId: string;
  readonly actorType: AuditActorType;
  readonly actorId: string;
  readonly action: string;
  readonly result: string;
  readonly agentId: string;
  readonly secretId: string;
  readonly secretVersion: number;
  readonly clientIp: string;
  readonly userAgent: string;
  readonly detail: string;
}

/** The canonical entry bytes: a fixed order of length-prefixed fields. */
export function encodeAuditEntry(entry: AuditFields): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/audit-entry"),
    u64(entry.seq),
    u64(entry.ts),
    lp(entry.requestId),
    lp(entry.actorType),
    lp(entry.actorId),
    lp(entry.action),
    lp(entry.result),
    lp(entry.agentId),
    lp(entry.secretId),
    u64(entry.secretVersion),
    lp(entry.clientIp),
    lp(entry.userAgent),
    lp(entry.detail),
  );
}

/** The hashed fields of an entry as it travels in JSON (`AuditEntryView`), in canonical order. */
export function auditFieldsFromView(entry: AuditEntryView): AuditFields {
  return {
    seq: entry.seq,
    ts: entry.ts,
    requestId: entry.request_id,
    actorType: entry.actor_type,
    actorId: entry.actor_id,
    action: entry.action,
    result: entry.result,
    agentId: entry.agent_id,
    secretId: entry.secret_id,
    secretVersion: entry.secret_version,
    clientIp: entry.client_ip,
    userAgent: entry.user_agent,
    detail: entry.detail,
  };
}

/** `leaf = SHA-256(0x00 ‖ LP(canonical entry bytes))`. */
export function auditLeaf(entry: AuditFields, sha256: Sha256Sync): Uint8Array {
  return sha256(concatBytes(Uint8Array.of(0), lp(encodeAuditEntry(entry))));
}

/** `entry_hash[n] = SHA-256(entry_hash[n-1] ‖ leaf[n])`. */
export function chainAuditHash(
  previous: Uint8Array,
  entry: AuditFields,
  sha256: Sha256Sync,
): Uint8Array {
  return sha256(concatBytes(previous, auditLeaf(entry, sha256)));
}

/** The bytes the server's audit key signs for a checkpoint of the first `size` entries. */
export function encodeCheckpoint(logId: string, size: number, head: Uint8Array): Uint8Array {
  let binary = "";
  for (const byte of head) binary += String.fromCharCode(byte);
  return utf8(`keyhole/v1/audit\n${logId}\n${size}\n${btoa(binary)}\n`);
}
