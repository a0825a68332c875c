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
  // Written first: the write may replace `scratch` with a larger buffer.
  const end = writeAuditEntry(entry, 0);
  return scratch.slice(0, end);
}

const ENTRY_LABEL = utf8("keyhole/v1/audit-entry");
const encoder = new TextEncoder();

/**
 * One buffer reused for every entry (grown when an entry needs more), and `previous ‖ leaf`:
 * every audited request and every entry of `audit verify` goes through here, and the bytes only
 * live until the synchronous `Sha256Sync` call that reads them (docs/performance.md).
 */
let scratch = new Uint8Array(1024);
let scratchView = new DataView(scratch.buffer);
const pair = new Uint8Array(64);

/** `LP(utf8(text))` at `at`: ASCII byte by byte, the rest by `encodeInto`. Returns the end. */
function putText(text: string, at: number): number {
  // Strict: a value that is not a string (JSON from an embedder, unchecked) must not encode as
  // "" or slip past the buffer's size estimate; it is refused, and a verifier reports it.
  if (typeof text !== "string") throw new TypeError("an audit text field is not a string");
  const out = scratch;
  const start = at + 4;
  const length = text.length;
  let o = start;
  let i = 0;
  for (; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) break;
    out[o++] = code;
  }
  // text[i - 1] is ASCII, so i never splits a surrogate pair.
  if (i < length) o += encoder.encodeInto(text.slice(i), out.subarray(o)).written;
  scratchView.setUint32(at, o - start, false);
  return o;
}

/** `u64(n)` at `at`. Returns the end. */
function putU64(n: number, at: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("u64 out of range");
  // A safe integer is below 2^53: the high word is n / 2^32, exactly.
  scratchView.setUint32(at, Math.floor(n / 2 ** 32), false);
  scratchView.setUint32(at + 4, n >>> 0, false);
  return at + 8;
}

/**
 * The canonical entry bytes, written into `scratch` after `headroom` bytes left free for the
 * caller (the leaf's `0x00 ‖ u32 length`); returns where they end. The same bytes as the
 * `lp`/`u64`/`concatBytes` form of FORMATS.md (tested against it on random entries).
 */
function writeAuditEntry(entry: AuditFields, headroom: number): number {
  // UTF-8 takes at most 3 bytes per UTF-16 unit: room for the worst case, grown rarely.
  const texts =
    entry.requestId.length +
    entry.actorType.length +
    entry.actorId.length +
    entry.action.length +
    entry.result.length +
    entry.agentId.length +
    entry.secretId.length +
    entry.clientIp.length +
    entry.userAgent.length +
    entry.detail.length;
  const bound = headroom + 4 + ENTRY_LABEL.length + 3 * 8 + 10 * 4 + 3 * texts;
  // `!(<=)` so that a NaN bound (a field without a length) grows nothing and is refused below.
  if (!(bound <= scratch.length)) {
    if (!Number.isSafeInteger(bound)) throw new TypeError("an audit text field is not a string");
    scratch = new Uint8Array(Math.max(bound, 2 * scratch.length));
    scratchView = new DataView(scratch.buffer);
  }
  scratchView.setUint32(headroom, ENTRY_LABEL.length, false);
  scratch.set(ENTRY_LABEL, headroom + 4);
  let at = headroom + 4 + ENTRY_LABEL.length;
  at = putU64(entry.seq, at);
  at = putU64(entry.ts, at);
  at = putText(entry.requestId, at);
  at = putText(entry.actorType, at);
  at = putText(entry.actorId, at);
  at = putText(entry.action, at);
  at = putText(entry.result, at);
  at = putText(entry.agentId, at);
  at = putText(entry.secretId, at);
  at = putU64(entry.secretVersion, at);
  at = putText(entry.clientIp, at);
  at = putText(entry.userAgent, at);
  at = putText(entry.detail, at);
  // Every byte went into the buffer: a typed array drops writes past its end without a word.
  if (at > scratch.length) throw new RangeError("audit entry larger than its buffer");
  return at;
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
  const end = writeAuditEntry(entry, 5);
  scratch[0] = 0;
  scratchView.setUint32(1, end - 5, false);
  return sha256(scratch.subarray(0, end));
}

/** `entry_hash[n] = SHA-256(entry_hash[n-1] ‖ leaf[n])`. */
export function chainAuditHash(
  previous: Uint8Array,
  entry: AuditFields,
  sha256: Sha256Sync,
): Uint8Array {
  const leaf = auditLeaf(entry, sha256);
  if (previous.length !== 32 || leaf.length !== 32) return sha256(concatBytes(previous, leaf));
  pair.set(previous, 0);
  pair.set(leaf, 32);
  return sha256(pair);
}

/** The bytes the server's audit key signs for a checkpoint of the first `size` entries. */
export function encodeCheckpoint(logId: string, size: number, head: Uint8Array): Uint8Array {
  let binary = "";
  for (const byte of head) binary += String.fromCharCode(byte);
  return utf8(`keyhole/v1/audit\n${logId}\n${size}\n${btoa(binary)}\n`);
}
