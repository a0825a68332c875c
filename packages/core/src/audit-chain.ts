/**
 * Checking audit entries as the API serves them against the hash chain (FORMATS.md "Audit entry
 * hash"): `seq` gap-free from the start, each entry's `hash` equal to the recomputed
 * `entry_hash[seq]`. A deleted, edited, reordered or inserted entry changes every hash after it;
 * a truncated log no longer reaches a pinned checkpoint's head.
 *
 * The one chain verifier: `keyhole audit verify` feeds it page by page as pages arrive (a log of
 * millions of entries never sits in memory), the server's tests feed it whole logs. SHA-256 is
 * passed in, as for `chainAuditHash`.
 */
import {
  AUDIT_GENESIS,
  auditFieldsFromView,
  chainAuditHash,
  type Sha256Sync,
} from "./audit-hash.js";
import { tryDecodeBase64url } from "./base64url.js";
import { equalBytes } from "./bytes.js";
import type { AuditEntryView } from "./wire.js";

/** Where a chain check starts: after `size` entries whose chain hash is `head`. */
export interface AuditChainStart {
  readonly size: number;
  readonly head: Uint8Array;
}

/** The outcome of checking entries against the chain. */
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
      /** The `seq` where the check failed (the expected one when an entry is missing). */
      readonly seq: number;
      readonly reason: "sequence_gap" | "hash_mismatch" | "malformed_entry";
    };

/**
 * A chain check that can be fed in pieces: `verify` extends it entry by entry and stops at the
 * first entry that does not continue it. Heads after the sizes named in `keepHeadsAt` (a
 * checkpoint's, a pin's) are kept for `headAt`.
 */
export class AuditChainVerifier {
  readonly #sha256: Sha256Sync;
  readonly #keep: ReadonlySet<number>;
  readonly #kept = new Map<number, Uint8Array>();
  #size: number;
  #head: Uint8Array;
  #failure: AuditChainResult | null = null;

  constructor(
    sha256: Sha256Sync,
    options: { readonly start?: AuditChainStart; readonly keepHeadsAt?: readonly number[] } = {},
  ) {
    const start = options.start ?? { size: 0, head: AUDIT_GENESIS };
    if (!Number.isSafeInteger(start.size) || start.size < 0 || start.head.length !== 32) {
      throw new RangeError("invalid audit chain start");
    }
    this.#sha256 = sha256;
    this.#size = start.size;
    this.#head = new Uint8Array(start.head);
    this.#keep = new Set(options.keepHeadsAt ?? []);
    if (this.#keep.has(this.#size)) this.#kept.set(this.#size, this.#head);
  }

  /** Entries checked so far, counting the start (the `seq` of the last one). */
  get size(): number {
    return this.#size;
  }

  /** The chain hash after the last entry checked. */
  get head(): Uint8Array {
    return new Uint8Array(this.#head);
  }

  /** The head after `size` entries, if `size` was named in `keepHeadsAt` and has been reached. */
  headAt(size: number): Uint8Array | null {
    const head = this.#kept.get(size);
    return head === undefined ? null : new Uint8Array(head);
  }

  /**
   * Checks `entries` as the next ones of the log (`seq` from `size + 1`, contiguous). After a
   * failure the state stays at the last good entry and every later call returns that failure.
   */
  verify(entries: readonly AuditEntryView[]): AuditChainResult {
    const sha256 = this.#sha256;
    const keep = this.#keep.size > 0;
    let head = this.#head;
    let seq = this.#size;
    if (this.#failure !== null) return this.#failure;
    let failure: AuditChainResult | null = null;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as AuditEntryView;
      const expected = seq + 1;
      if (entry.seq !== expected) {
        failure = { ok: false, seq: expected, reason: "sequence_gap" };
        break;
      }
      let next: Uint8Array;
      try {
        next = chainAuditHash(head, auditFieldsFromView(entry), sha256);
      } catch {
        failure = { ok: false, seq: expected, reason: "malformed_entry" };
        break;
      }
      const stored = tryDecodeBase64url(entry.hash);
      if (stored === null || !equalBytes(stored, next)) {
        failure = { ok: false, seq: expected, reason: "hash_mismatch" };
        break;
      }
      head = next;
      seq = expected;
      if (keep && this.#keep.has(seq)) this.#kept.set(seq, head);
    }
    this.#head = head;
    this.#size = seq;
    if (failure !== null) {
      this.#failure = failure;
      return failure;
    }
    return { ok: true, size: seq, head: new Uint8Array(head) };
  }
}
