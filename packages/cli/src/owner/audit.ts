/**
 * Reading and verifying the audit log. `verifyAuditLog` recomputes the hash chain from every
 * entry (FORMATS.md "Audit entry hash"), checks the server's signed checkpoint with the audit key
 * pinned at `init`, and checks that the log neither shrank nor changed below the checkpoint this
 * machine pinned last time. Omission of new entries cannot be detected, rewriting can.
 */
import { createHash } from "node:crypto";
import {
  AUDIT_GENESIS,
  type AuditEntryView,
  auditFieldsFromView,
  type CheckpointView,
  chainAuditHash,
  encodeBase64url,
  encodeCheckpoint,
  equalBytes,
  KeyholeError,
  verify,
} from "@keyhole/core";
import { type AuditPin, updateConfig } from "./config.js";
import type { OwnerSession } from "./session.js";
import { bytes, parseAuditPage, parseCheckpoint } from "./views.js";

/** Filters of `GET /v1/owner/audit`. */
export interface AuditFilter {
  readonly agent?: string;
  readonly secret?: string;
  /** Only entries at or after this time (ms). */
  readonly since?: number;
}

/** The largest page the API serves. */
const PAGE = 1000;

/** The first sequence number of a log. */
const FIRST_SEQ = 1;

function auditQuery(after: number, limit: number, filter: AuditFilter): string {
  const params = new URLSearchParams({ after: String(after), limit: String(limit) });
  if (filter.agent !== undefined) params.set("agent", filter.agent);
  if (filter.secret !== undefined) params.set("secret", filter.secret);
  if (filter.since !== undefined) params.set("since", String(filter.since));
  return `/v1/owner/audit?${params.toString()}`;
}

/** One page of entries after `after`. */
export async function fetchAuditPage(
  session: OwnerSession,
  after: number,
  limit: number,
  filter: AuditFilter = {},
): Promise<{ entries: AuditEntryView[]; next: number | null }> {
  const page = parseAuditPage(
    await session.client.request("GET", auditQuery(after, limit, filter)),
  );
  let previous = after;
  for (const entry of page.entries) {
    if (entry.seq <= previous) {
      throw new KeyholeError(
        "untrusted_server",
        `audit log verification failed: entry seq ${entry.seq} is out of order (after seq ${previous})`,
      );
    }
    previous = entry.seq;
  }
  return page;
}

/**
 * Every entry matching `filter` after `after`, page by page. With `keepLast`, only the last
 * that many are kept (the newest), so a long log does not fill memory.
 */
export async function fetchAudit(
  session: OwnerSession,
  filter: AuditFilter,
  options: { after?: number; keepLast?: number } = {},
): Promise<AuditEntryView[]> {
  const kept: AuditEntryView[] = [];
  let after = options.after ?? 0;
  for (;;) {
    const page = await fetchAuditPage(session, after, PAGE, filter);
    kept.push(...page.entries);
    if (options.keepLast !== undefined && kept.length > options.keepLast) {
      kept.splice(0, kept.length - options.keepLast);
    }
    const last = page.entries.at(-1);
    if (page.next === null || last === undefined) return kept;
    const next = Math.max(page.next, last.seq);
    if (next <= after)
      throw new KeyholeError("untrusted_server", "the audit log pages do not advance");
    after = next;
  }
}

function sha256(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}

function tampered(message: string): never {
  throw new KeyholeError("untrusted_server", `audit log verification failed: ${message}`);
}

/** What `audit verify` established. */
export interface AuditVerification {
  readonly entries: number;
  readonly checkpoint: CheckpointView;
  readonly previousPin: AuditPin | null;
}

/**
 * Recomputes the chain over `entries` (all of them, from the first) and returns the head after
 * each prefix size that is asked for. A wrong hash names the first bad seq.
 */
export function recomputeChain(
  entries: readonly AuditEntryView[],
  sizes: readonly number[],
): Map<number, Uint8Array> {
  const heads = new Map<number, Uint8Array>();
  if (sizes.includes(0)) heads.set(0, AUDIT_GENESIS);
  let head = AUDIT_GENESIS;
  for (const [index, entry] of entries.entries()) {
    const expectedSeq = FIRST_SEQ + index;
    if (entry.seq !== expectedSeq) {
      tampered(
        entry.seq > expectedSeq
          ? `entry seq ${expectedSeq} is missing (next is seq ${entry.seq})`
          : `entry seq ${entry.seq} is out of order`,
      );
    }
    head = chainAuditHash(head, auditFieldsFromView(entry), sha256);
    if (!equalBytes(head, bytes(entry.hash))) {
      tampered(`seq ${entry.seq} does not match the hash chain (edited, removed or reordered)`);
    }
    if (sizes.includes(index + 1)) heads.set(index + 1, head);
  }
  return heads;
}

/**
 * Verifies the whole log against the server's signed checkpoint and this machine's pin, then
 * pins the new checkpoint. Any failure is `untrusted_server` with a line saying what is wrong.
 */
export async function verifyAuditLog(session: OwnerSession): Promise<AuditVerification> {
  const checkpoint = parseCheckpoint(
    await session.client.request("GET", "/v1/owner/audit/checkpoint"),
  );
  const pinnedKey = bytes(session.config.audit_pk);
  if (!equalBytes(bytes(checkpoint.audit_pk), pinnedKey)) {
    tampered("the server's audit key differs from the one pinned at init");
  }
  const head = bytes(checkpoint.head);
  const signed = encodeCheckpoint(checkpoint.log_id, checkpoint.size, head);
  if (!(await verify(pinnedKey, signed, bytes(checkpoint.sig)))) {
    tampered("the checkpoint signature is not valid for the pinned audit key");
  }
  const pin = session.config.audit_pin;
  if (pin !== null && pin.log_id !== checkpoint.log_id) {
    tampered(`the log id changed since the pinned checkpoint (was ${pin.log_id})`);
  }
  if (pin !== null && checkpoint.size < pin.size) {
    tampered(`the checkpoint went back from size ${pin.size} to ${checkpoint.size}`);
  }
  const entries = await fetchAudit(session, {});
  const sizes = pin === null ? [checkpoint.size] : [checkpoint.size, pin.size];
  const heads = recomputeChain(entries, sizes);
  if (pin !== null && entries.length < pin.size) {
    tampered(`the log shrank from ${pin.size} entries (pinned) to ${entries.length}`);
  }
  if (entries.length < checkpoint.size) {
    tampered(`the log has ${entries.length} entries but its checkpoint covers ${checkpoint.size}`);
  }
  if (!equalBytes(heads.get(checkpoint.size) ?? new Uint8Array(0), head)) {
    tampered(`the entries up to seq ${checkpoint.size} do not match the signed checkpoint`);
  }
  if (pin !== null) {
    const pinnedHead = heads.get(pin.size);
    if (pinnedHead === undefined || !equalBytes(pinnedHead, bytes(pin.head))) {
      tampered(`entries up to seq ${pin.size} changed since the pinned checkpoint`);
    }
  }
  const newPin: AuditPin = {
    log_id: checkpoint.log_id,
    size: checkpoint.size,
    head: encodeBase64url(head),
  };
  await updateConfig(session.home, (config) => ({ ...config, audit_pin: newPin }));
  return { entries: entries.length, checkpoint, previousPin: pin };
}
