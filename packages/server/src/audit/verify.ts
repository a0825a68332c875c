/**
 * Verifying the audit log from its API entries: recompute the hash chain with core's
 * `chainAuditHash` and check a server checkpoint signature. A deleted, edited, reordered or
 * inserted entry changes every hash after it; a truncated log no longer reaches a pinned
 * checkpoint. Used by the server's tests; `keyhole audit verify` has its own
 * (`packages/cli/src/owner/audit.ts`, `recomputeChain`) over the same core hashing. The two are
 * to become one with the faster entry encoder (docs/performance.md, `audit verify`).
 */
import { createPublicKey, verify } from "node:crypto";
import {
  AUDIT_GENESIS,
  type AuditEntryView,
  auditFieldsFromView,
  type CheckpointView,
  chainAuditHash,
  decodeBase64url,
  encodeCheckpoint,
  equalBytes,
  tryDecodeBase64url,
} from "@keyhole/core";
import { sha256Sync } from "./sha256.js";

/** The outcome of a chain verification. */
export type AuditChainResult =
  | {
      readonly ok: true;
      /** The number of entries through the last one checked (its `seq`). */
      readonly size: number;
      /** The chain hash after the last entry checked. */
      readonly head: Uint8Array;
    }
  | {
      readonly ok: false;
      /** The `seq` where verification failed (the expected one when a row is missing). */
      readonly seq: number;
      readonly reason: "sequence_gap" | "hash_mismatch" | "malformed_entry";
    };

/** Where a partial chain starts: after `size` entries whose chain hash is `head`. */
export interface AuditChainStart {
  readonly size: number;
  readonly head: Uint8Array;
}

/**
 * Recomputes the chain over `entries` (in order, `seq` contiguous from `start.size + 1`,
 * default from 1) and checks each entry's `hash`.
 */
export function verifyAuditChain(
  entries: readonly AuditEntryView[],
  start: AuditChainStart = { size: 0, head: AUDIT_GENESIS },
): AuditChainResult {
  let head = start.head;
  let seq = start.size;
  for (const entry of entries) {
    seq += 1;
    if (entry.seq !== seq) return { ok: false, seq, reason: "sequence_gap" };
    const stored = tryDecodeBase64url(entry.hash);
    let next: Uint8Array;
    try {
      next = chainAuditHash(head, auditFieldsFromView(entry), sha256Sync);
    } catch {
      return { ok: false, seq, reason: "malformed_entry" };
    }
    if (stored === null || !equalBytes(stored, next))
      return { ok: false, seq, reason: "hash_mismatch" };
    head = next;
  }
  return { ok: true, size: seq, head };
}

/**
 * True when `checkpoint` is signed by `auditPk` (raw 32-byte Ed25519) over core's
 * `encodeCheckpoint(log_id, size, head)`.
 */
export function verifyCheckpoint(checkpoint: CheckpointView, auditPk: Uint8Array): boolean {
  const head = tryDecodeBase64url(checkpoint.head);
  const sig = tryDecodeBase64url(checkpoint.sig);
  if (head === null || head.length !== 32 || sig === null || sig.length !== 64) return false;
  if (auditPk.length !== 32 || !Number.isSafeInteger(checkpoint.size) || checkpoint.size < 0) {
    return false;
  }
  try {
    const key = createPublicKey({
      key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), auditPk]),
      format: "der",
      type: "spki",
    });
    return verify(null, encodeCheckpoint(checkpoint.log_id, checkpoint.size, head), key, sig);
  } catch {
    return false;
  }
}

/** Decodes a checkpoint's `audit_pk` field (convenience for callers holding only the view). */
export function checkpointPublicKey(checkpoint: CheckpointView): Uint8Array {
  return decodeBase64url(checkpoint.audit_pk, 32);
}

/** The outcome of checking a log against a checkpoint pinned earlier. */
export type PinnedCheckResult =
  | { readonly ok: true; readonly size: number; readonly head: Uint8Array }
  | {
      readonly ok: false;
      readonly reason: "chain_broken" | "log_shrank" | "history_rewritten";
      /** Where the chain broke, for `chain_broken`. */
      readonly seq?: number;
    };

/**
 * Checks the whole log (`entries` from seq 1) against a checkpoint the owner pinned earlier
 * (whose signature the caller has verified): the chain must verify, reach at least the pinned
 * size, and pass through the pinned head at that size. Catches edits, deletions, reordering,
 * insertions and truncation; not omission of entries the server never wrote.
 */
export function verifyAgainstCheckpoint(
  entries: readonly AuditEntryView[],
  pinned: Pick<CheckpointView, "size" | "head">,
): PinnedCheckResult {
  const prefix = verifyAuditChain(entries.slice(0, pinned.size));
  if (!prefix.ok) return { ok: false, reason: "chain_broken", seq: prefix.seq };
  if (prefix.size < pinned.size) return { ok: false, reason: "log_shrank" };
  const head = tryDecodeBase64url(pinned.head);
  if (head === null || !equalBytes(head, prefix.head))
    return { ok: false, reason: "history_rewritten" };
  const rest = verifyAuditChain(entries.slice(pinned.size), prefix);
  if (!rest.ok) return { ok: false, reason: "chain_broken", seq: rest.seq };
  return rest;
}
