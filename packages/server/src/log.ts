/**
 * The server's log: one JSON line per request and one per unexpected error. Every field is named
 * here on purpose: no header, body, query value, token or error message ever reaches a line, at
 * any level (SECURITY-TESTS #12). Error messages can quote input (SQLite, JSON.parse), so an
 * unexpected error is logged by its name and code only, and at debug by its stack frames without
 * the message line.
 */

/** How much to log. `debug` adds stack frames of unexpected errors, never more data. */
export type LogLevel = "silent" | "error" | "info" | "debug";

const RANK: Record<LogLevel, number> = { silent: 0, error: 1, info: 2, debug: 3 };

/** One finished request. */
export interface RequestLine {
  readonly requestId: string;
  readonly method: string;
  /** The path without its query string: it only holds names and ids. */
  readonly path: string;
  /** The matched route pattern, or null when none matched. */
  readonly route: string | null;
  readonly status: number;
  readonly durationMs: number;
  /** The authenticated actor: an agent id, "owner", or null. */
  readonly actor: string | null;
}

/** Writes log lines to a sink. */
export class Logger {
  readonly #rank: number;
  readonly #sink: (line: string) => void;

  constructor(level: LogLevel, sink: (line: string) => void) {
    this.#rank = RANK[level];
    this.#sink = sink;
  }

  /** True when lines of `level` are written. */
  enabled(level: Exclude<LogLevel, "silent">): boolean {
    return this.#rank >= RANK[level];
  }

  /** A finished request: at `info`, or at `error` when it failed with a 5xx. */
  request(line: RequestLine): void {
    if (!this.enabled(line.status >= 500 ? "error" : "info")) return;
    this.#write({
      level: line.status >= 500 ? "error" : "info",
      msg: "request",
      request_id: line.requestId,
      method: line.method,
      path: line.path,
      route: line.route,
      status: line.status,
      duration_ms: Math.round(line.durationMs * 10) / 10,
      actor: line.actor,
    });
  }

  /** An unexpected error: its class name and code, never its message. */
  unexpected(context: string, error: unknown, requestId?: string): void {
    if (!this.enabled("error")) return;
    const e = error as { name?: unknown; code?: unknown; stack?: unknown } | null;
    const fields: Record<string, unknown> = {
      level: "error",
      msg: context,
      request_id: requestId ?? null,
      error: typeof e?.name === "string" ? e.name : typeof error,
      code: typeof e?.code === "string" ? e.code : null,
    };
    if (this.enabled("debug") && typeof e?.stack === "string") {
      // Frames only: the first line of a stack is the message, which may quote input.
      fields.frames = e.stack
        .split("\n")
        .filter((l) => l.trimStart().startsWith("at "))
        .map((l) => l.trim())
        .slice(0, 12);
    }
    this.#write(fields);
  }

  /** A fixed event with fixed-vocabulary fields (start-up, shutdown, warnings). */
  event(
    level: Exclude<LogLevel, "silent">,
    msg: string,
    fields: Record<string, string | number | boolean | null> = {},
  ): void {
    if (!this.enabled(level)) return;
    this.#write({ level, msg, ...fields });
  }

  #write(fields: Record<string, unknown>): void {
    try {
      this.#sink(JSON.stringify({ time: new Date().toISOString(), ...fields }));
    } catch {
      // A broken log sink must not take a request down with it.
    }
  }
}
