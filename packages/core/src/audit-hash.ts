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
import { concatBytes, utf8 } from "./bytes.js";
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
  return writeAuditEntry(entry, 0);
}

const ENTRY_LABEL = utf8("keyhole/v1/audit-entry");

/**
 * The canonical entry bytes, written into one buffer after `headroom` bytes left free for the
 * caller (the leaf's `0x00 ‖ u32 length`): the same bytes as the `lp`/`u64`/`concatBytes` form
 * of FORMATS.md (tested against it), without the dozens of small arrays and copies, since every
 * audited request and every entry of `audit verify` goes through here (docs/performance.md).
 */
function writeAuditEntry(entry: AuditFields, headroom: number): Uint8Array {
  const texts = [
    entry.requestId,
    entry.actorType,
    entry.actorId,
    entry.action,
    entry.result,
    entry.agentId,
    entry.secretId,
    entry.clientIp,
    entry.userAgent,
    entry.detail,
  ].map(utf8);
  let size = headroom + 4 + ENTRY_LABEL.length + 3 * 8;
  for (const text of texts) size += 4 + text.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = headroom;
  const putBytes = (bytes: Uint8Array) => {
    view.setUint32(at, bytes.length, false);
    out.set(bytes, at + 4);
    at += 4 + bytes.length;
  };
  const putU64 = (n: number) => {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("u64 out of range");
    // A safe integer is below 2^53: the high word is n / 2^32, exactly.
    view.setUint32(at, Math.floor(n / 2 ** 32), false);
    view.setUint32(at + 4, n >>> 0, false);
    at += 8;
  };
  putBytes(ENTRY_LABEL);
  putU64(entry.seq);
  putU64(entry.ts);
  for (const text of texts.slice(0, 7)) putBytes(text);
  putU64(entry.secretVersion);
  for (const text of texts.slice(7)) putBytes(text);
  return headroom === 0 ? out : out.subarray(headroom);
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
  // 0x00 ‖ LP(entry), written in place in front of the entry bytes.
  const entryBytes = writeAuditEntry(entry, 5);
  const leafInput = new Uint8Array(entryBytes.buffer, 0, entryBytes.length + 5);
  leafInput[0] = 0;
  new DataView(leafInput.buffer).setUint32(1, entryBytes.length, false);
  return sha256(leafInput);
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
