/**
 * Verifying the audit log from its API entries, for the server's tests and embedders: core's
 * `AuditChainVerifier` (the one chain check, which `keyhole audit verify` runs too) with the
 * server's SHA-256, and the check of a checkpoint signature. A deleted, edited, reordered or
 * inserted entry changes every hash after it; a truncated log no longer reaches a pinned
 * checkpoint.
 */
import { createPublicKey, verify } from "node:crypto";
import {
  AUDIT_GENESIS,
  type AuditChainResult,
  type AuditChainStart,
  AuditChainVerifier,
  type AuditEntryView,
  type CheckpointView,
  decodeBase64url,
  encodeCheckpoint,
  equalBytes,
  tryDecodeBase64url,
} from "@keyhole/core";
import { sha256Sync } from "./sha256.js";

export type { AuditChainResult, AuditChainStart };

/**
 * Recomputes the chain over `entries` (in order, `seq` contiguous from `start.size + 1`,
 * default from 1) and checks each entry's `hash`.
 */
export function verifyAuditChain(
  entries: readonly AuditEntryView[],
  start: AuditChainStart = { size: 0, head: AUDIT_GENESIS },
): AuditChainResult {
  return new AuditChainVerifier(sha256Sync, { start }).verify(entries);
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
  const chain = new AuditChainVerifier(sha256Sync, { keepHeadsAt: [pinned.size] });
  const result = chain.verify(entries);
  // A break before the pinned size is reported as such; a break after it only if the prefix held.
  const pinnedHead = chain.headAt(pinned.size);
  if (!result.ok && pinnedHead === null) {
    return { ok: false, reason: "chain_broken", seq: result.seq };
  }
  if (pinnedHead === null) return { ok: false, reason: "log_shrank" };
  const head = tryDecodeBase64url(pinned.head);
  if (head === null || !equalBytes(head, pinnedHead)) {
    return { ok: false, reason: "history_rewritten" };
  }
  if (!result.ok) return { ok: false, reason: "chain_broken", seq: result.seq };
  return result;
}
