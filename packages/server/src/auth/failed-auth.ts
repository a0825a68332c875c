/**
 * Audit entries for failed authentication (`auth.failed`), throttled so a flood cannot grow the
 * log without bound, yet so that no failure aimed at a known agent goes unattributed.
 *
 * - **Keys.** Failures are throttled per *key*: the client source (IPv4 address or IPv6 /64)
 *   for failures that name no known agent, and the pair (source, token id) when the token id
 *   belongs to an agent (a valid id with a wrong key, or a revoked, rotated-out or expired
 *   token). A junk request can therefore not use up the slot a guess against an agent would
 *   need: each key writes at most one entry per `intervalMs`, and the failures in between are
 *   counted (`suppressed=N`) into that key's next entry, or by `flush()` (on a timer and at
 *   shutdown). An entry of an agent's key carries the agent id.
 * - **Bounds.** At most `maxKeys` keys are tracked (no eviction: evicting let every new IPv6 /64
 *   write a row per request), and at most `maxEntriesPerInterval` keyed entries are written per
 *   interval, all keys together. A failure beyond either bound is folded into an *overflow*
 *   count per agent (one anonymous count for failures naming no agent), written as one entry
 *   per agent per interval, with `sources=N`. So the log grows by at most
 *   `maxEntriesPerInterval` + (agents under attack) + 1 rows per interval, however many sources
 *   there are, and every attempt against a known agent is counted under its agent id.
 * - **Leaks.** A wrong key for a valid token id means someone holds the token id without its
 *   key: its entries say `bad_keys=K` (wrong keys for that token id since the server started)
 *   and, from `leakThreshold` on, `likely_leak`. A *valid* token presented from outside its
 *   agent's CIDR allowlist (`agent_source_not_allowed`) says `likely_leak` at once: the whole
 *   token has left the machines it was meant for.
 *
 * Accounting: an entry with a request id stands for 1 + `suppressed` failures, one without
 * (a summary) for `suppressed` failures.
 */
import type { AuditDraft, Store } from "../store/store.js";

/** One failed attempt, described without any credential. */
export interface FailedAttempt {
  readonly requestId: string;
  readonly clientIp: string;
  readonly source: string;
  readonly userAgent: string;
  /** A fixed word saying which check failed, e.g. `agent_bad_key`, `owner_stale_timestamp`. */
  readonly reason: string;
  /** The agent the token id belongs (or belonged) to; else "". */
  readonly agentId: string;
  /** The presented token id (base64url) when the header carried a well-formed one; else null. */
  readonly tokenKey: string | null;
}

/** Throttle tuning (tests shrink it). */
export interface FailedAuthLimits {
  /** One entry per key per interval. */
  readonly intervalMs: number;
  /** Keys tracked at once. */
  readonly maxKeys: number;
  /** Keyed entries (per-attempt and per-key summaries) per interval, all keys together. */
  readonly maxEntriesPerInterval: number;
  /** Wrong keys for one valid token id from which its entries say `likely_leak`. */
  readonly leakThreshold: number;
  /** Agents with an overflow count, and token ids with a wrong-key count, tracked at once. */
  readonly maxAgents: number;
}

/** The defaults: at most about 100 rows a second under any flood, plus one per attacked agent. */
export const DEFAULT_FAILED_AUTH_LIMITS: FailedAuthLimits = {
  intervalMs: 1000,
  maxKeys: 1024,
  maxEntriesPerInterval: 100,
  leakThreshold: 5,
  maxAgents: 1000,
};

/** The failure reason of a valid agent token used from outside its allowed ranges. */
export const SOURCE_NOT_ALLOWED = "agent_source_not_allowed";

/** The most distinct sources an overflow count tells apart (then `sources=N+`). */
const MAX_BUCKET_SOURCES = 256;

interface KeyState {
  /** When this key last wrote an entry, or was first held back. */
  since: number;
  suppressed: number;
  /** Reasons of the held-back failures, in first-seen order. */
  reasons: Set<string>;
  source: string;
  clientIp: string;
  userAgent: string;
  agentId: string;
  tokenKey: string | null;
}

interface OverflowBucket {
  since: number;
  count: number;
  reasons: Set<string>;
  sources: Set<string>;
  likelyLeak: boolean;
}

/** Writes throttled `auth.failed` entries. */
export class FailedAuthRecorder {
  readonly #store: Pick<Store, "appendAudit">;
  readonly #clock: () => number;
  readonly #limits: FailedAuthLimits;
  readonly #keys = new Map<string, KeyState>();
  /** Overflow counts by agent id ("" for failures naming no agent). */
  readonly #overflow = new Map<string, OverflowBucket>();
  /** Wrong keys per valid token id, least recently failing first. */
  readonly #badKeys = new Map<string, number>();
  #windowStart = Number.NEGATIVE_INFINITY;
  #written = 0;

  constructor(
    store: Pick<Store, "appendAudit">,
    clock: () => number,
    limits: Partial<FailedAuthLimits> = {},
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#limits = { ...DEFAULT_FAILED_AUTH_LIMITS, ...limits };
  }

  /** Records one failure: writes an entry, or counts it for a later one. */
  async record(attempt: FailedAttempt): Promise<void> {
    const now = this.#clock();
    await this.#roll(now);
    const badKeys = this.#countBadKey(attempt);
    const key = keyOf(attempt);
    const state = this.#keys.get(key);
    if (state && now - state.since < this.#limits.intervalMs) {
      state.suppressed += 1;
      state.reasons.add(attempt.reason);
      return;
    }
    const full = !state && this.#keys.size >= this.#limits.maxKeys;
    if (full || this.#written >= this.#limits.maxEntriesPerInterval) {
      if (state) this.#spillKey(key, state, now);
      this.#spill(attempt.agentId, attempt.source, [attempt.reason], 1, badKeys, now);
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#keys.set(key, newState(attempt, now));
    this.#written += 1;
    await this.#store.appendAudit(
      entry(now, attempt.requestId, attempt.clientIp, attempt.userAgent, attempt.agentId, [
        `reason=${attempt.reason}`,
        ...leakWords(badKeys, this.#limits.leakThreshold, [attempt.reason]),
        suppressed > 0 ? `suppressed=${suppressed}` : "",
      ]),
    );
  }

  /**
   * Writes the failures still uncounted in the log: one entry per key quiet for the interval
   * (every key with `force`, at shutdown), then the overflow counts. A key the per-interval
   * budget leaves no room for is folded into its agent's overflow count.
   */
  async flush(force = false): Promise<void> {
    const now = this.#clock();
    await this.#roll(now);
    for (const [key, state] of this.#keys) {
      if (!force && now - state.since < this.#limits.intervalMs) continue;
      if (state.suppressed === 0) {
        this.#keys.delete(key);
        continue;
      }
      if (this.#written >= this.#limits.maxEntriesPerInterval) {
        this.#spillKey(key, state, now);
        continue;
      }
      const suppressed = state.suppressed;
      const reasons = [...state.reasons];
      state.suppressed = 0;
      state.reasons.clear();
      state.since = now;
      this.#written += 1;
      const badKeys = reasons.includes("agent_bad_key") ? this.#badKeyCount(state) : 0;
      try {
        await this.#store.appendAudit(
          entry(now, "", state.clientIp, state.userAgent, state.agentId, [
            `reason=${reasons.join(",")}`,
            ...leakWords(badKeys, this.#limits.leakThreshold, reasons),
            `suppressed=${suppressed}`,
          ]),
        );
      } catch (error) {
        // Not written (a full disk, say): the counts wait for the next flush, never dropped.
        state.suppressed += suppressed;
        for (const reason of reasons) state.reasons.add(reason);
        throw error;
      }
    }
    await this.#writeOverflow(now, force);
  }

  /** Starts a new budget interval when the current one is over, writing the overflow due. */
  async #roll(now: number): Promise<void> {
    if (now - this.#windowStart < this.#limits.intervalMs) return;
    this.#windowStart = now;
    this.#written = 0;
    await this.#writeOverflow(now, false);
  }

  async #writeOverflow(now: number, force: boolean): Promise<void> {
    for (const [agentId, bucket] of this.#overflow) {
      if (!force && now - bucket.since < this.#limits.intervalMs) continue;
      this.#overflow.delete(agentId);
      const sources =
        bucket.sources.size >= MAX_BUCKET_SOURCES
          ? `${MAX_BUCKET_SOURCES}+`
          : String(bucket.sources.size);
      try {
        await this.#store.appendAudit(
          entry(now, "", "", "", agentId, [
            `reason=${[...bucket.reasons].join(",")}`,
            bucket.likelyLeak ? "likely_leak" : "",
            `suppressed=${bucket.count}`,
            `sources=${sources}`,
          ]),
        );
      } catch (error) {
        // Not written: merged back, so the failures are counted by a later entry.
        const later = this.#overflow.get(agentId);
        if (later !== undefined) {
          bucket.count += later.count;
          for (const reason of later.reasons) bucket.reasons.add(reason);
          for (const source of later.sources) {
            if (bucket.sources.size < MAX_BUCKET_SOURCES) bucket.sources.add(source);
          }
          bucket.likelyLeak ||= later.likelyLeak;
        }
        this.#overflow.set(agentId, bucket);
        throw error;
      }
    }
  }

  /** Stops tracking a key, moving what it held back to its agent's overflow count. */
  #spillKey(key: string, state: KeyState, now: number): void {
    this.#keys.delete(key);
    if (state.suppressed === 0) return;
    const badKeys = state.reasons.has("agent_bad_key") ? this.#badKeyCount(state) : 0;
    this.#spill(state.agentId, state.source, [...state.reasons], state.suppressed, badKeys, now);
  }

  #badKeyCount(state: KeyState): number {
    return state.tokenKey === null ? 0 : (this.#badKeys.get(state.tokenKey) ?? 0);
  }

  /** Adds failures to the overflow count of their agent. */
  #spill(
    agentId: string,
    source: string,
    reasons: readonly string[],
    count: number,
    badKeys: number,
    now: number,
  ): void {
    let bucket = this.#overflow.get(agentId);
    if (!bucket) {
      // Past maxAgents distinct agents under attack at once, the rest count anonymously.
      const id = this.#overflow.size < this.#limits.maxAgents + 1 ? agentId : "";
      bucket = this.#overflow.get(id) ?? {
        since: now,
        count: 0,
        reasons: new Set(),
        sources: new Set(),
        likelyLeak: false,
      };
      this.#overflow.set(id, bucket);
    }
    bucket.count += count;
    for (const reason of reasons) bucket.reasons.add(reason);
    if (reasons.includes(SOURCE_NOT_ALLOWED)) bucket.likelyLeak = true;
    if (bucket.sources.size < MAX_BUCKET_SOURCES) bucket.sources.add(source);
    if (badKeys >= this.#limits.leakThreshold) bucket.likelyLeak = true;
  }

  /** Counts a wrong key for a valid token id; returns the count so far (0 for other failures). */
  #countBadKey(attempt: FailedAttempt): number {
    if (attempt.reason !== "agent_bad_key" || attempt.tokenKey === null) return 0;
    const count = (this.#badKeys.get(attempt.tokenKey) ?? 0) + 1;
    this.#badKeys.delete(attempt.tokenKey);
    while (this.#badKeys.size >= this.#limits.maxAgents) {
      const oldest = this.#badKeys.keys().next().value;
      if (oldest === undefined) break;
      this.#badKeys.delete(oldest);
    }
    this.#badKeys.set(attempt.tokenKey, count);
    return count;
  }
}

/** The throttle key: the source, or the source and token id when it names an agent. */
function keyOf(attempt: FailedAttempt): string {
  return attempt.agentId !== "" && attempt.tokenKey !== null
    ? `${attempt.source} ${attempt.tokenKey}`
    : attempt.source;
}

function newState(attempt: FailedAttempt, now: number): KeyState {
  return {
    since: now,
    suppressed: 0,
    reasons: new Set(),
    source: attempt.source,
    clientIp: attempt.clientIp,
    userAgent: attempt.userAgent,
    agentId: attempt.agentId,
    tokenKey: attempt.agentId === "" ? null : attempt.tokenKey,
  };
}

function leakWords(badKeys: number, threshold: number, reasons: readonly string[]): string[] {
  const leaked = badKeys >= threshold || reasons.includes(SOURCE_NOT_ALLOWED);
  return [badKeys === 0 ? "" : `bad_keys=${badKeys}`, leaked ? "likely_leak" : ""];
}

function entry(
  ts: number,
  requestId: string,
  clientIp: string,
  userAgent: string,
  agentId: string,
  detail: string[],
): AuditDraft {
  return {
    ts,
    requestId,
    actorType: "anonymous",
    actorId: "",
    action: "auth.failed",
    result: "unauthenticated",
    agentId,
    secretId: "",
    secretVersion: 0,
    clientIp,
    userAgent,
    detail: detail.filter((d) => d !== "").join(" "),
  };
}
