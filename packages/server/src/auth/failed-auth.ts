/**
 * Audit entries for failed authentication (`auth.failed`), throttled so a flood cannot grow the
 * log without bound: at most one entry per client source per `intervalMs`; the failures in
 * between are counted and reported as `suppressed=N` in the next entry for that source, or by
 * `flush()` (which the server calls on a timer and at shutdown).
 */
import type { AuditDraft, Store } from "../store/store.js";

/** One failed attempt, described without any credential. */
export interface FailedAttempt {
  readonly requestId: string;
  readonly clientIp: string;
  readonly source: string;
  readonly userAgent: string;
  /** A fixed word saying which check failed, e.g. `bad_key`, `stale_timestamp`. */
  readonly reason: string;
  /** The agent the token id belongs to, when it belongs to one; else "". */
  readonly agentId: string;
}

interface SourceState {
  lastWritten: number;
  suppressed: number;
  clientIp: string;
  userAgent: string;
}

/** Writes throttled `auth.failed` entries. */
export class FailedAuthRecorder {
  readonly #store: Pick<Store, "appendAudit">;
  readonly #clock: () => number;
  readonly #intervalMs: number;
  readonly #maxSources: number;
  readonly #sources = new Map<string, SourceState>();

  constructor(
    store: Pick<Store, "appendAudit">,
    clock: () => number,
    intervalMs = 1000,
    maxSources = 10_000,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#maxSources = maxSources;
  }

  /** Records one failure: writes an entry, or counts it when the source wrote one just now. */
  async record(attempt: FailedAttempt): Promise<void> {
    const now = this.#clock();
    const state = this.#sources.get(attempt.source);
    if (state && now - state.lastWritten < this.#intervalMs) {
      state.suppressed += 1;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#remember(attempt, now);
    await this.#store.appendAudit(
      entry(now, attempt.requestId, attempt.clientIp, attempt.userAgent, attempt.agentId, [
        `reason=${attempt.reason}`,
        suppressed > 0 ? `suppressed=${suppressed}` : "",
      ]),
    );
  }

  /**
   * Writes one entry per source with failures still uncounted in the log (those quiet for the
   * interval, or all of them with `force`, at shutdown).
   */
  async flush(force = false): Promise<void> {
    const now = this.#clock();
    for (const [source, state] of this.#sources) {
      const due = force || now - state.lastWritten >= this.#intervalMs;
      if (state.suppressed > 0 && due) {
        const suppressed = state.suppressed;
        state.suppressed = 0;
        state.lastWritten = now;
        await this.#store.appendAudit(
          entry(now, "", state.clientIp, state.userAgent, "", [`suppressed=${suppressed}`]),
        );
      } else if (state.suppressed === 0 && due) {
        this.#sources.delete(source);
      }
    }
  }

  #remember(attempt: FailedAttempt, now: number): void {
    this.#sources.delete(attempt.source);
    while (this.#sources.size >= this.#maxSources) {
      const oldest = this.#sources.keys().next().value;
      if (oldest === undefined) break;
      this.#sources.delete(oldest);
    }
    this.#sources.set(attempt.source, {
      lastWritten: now,
      suppressed: 0,
      clientIp: attempt.clientIp,
      userAgent: attempt.userAgent,
    });
  }
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
