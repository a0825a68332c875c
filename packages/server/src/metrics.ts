/**
 * `GET /metrics`: request counts, latencies, failed authentications and the audit chain length,
 * in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/). Off unless
 * `ServerOptions.metrics` is set.
 *
 * Labels come from a closed vocabulary only: the router's pattern (`/v1/agent/secrets/:name`,
 * never the raw path, which holds secret and agent names), the route's method, the status class
 * and the route's role, and SQLite result codes (`SQLITE_FULL`) for storage failures. No secret
 * name, agent name, token id or client address can reach a label.
 */
import { KeyholeError } from "@keyhole/core";
import type { Role, Route } from "./http/router.js";
import type { Logger } from "./log.js";
import type { Store, WriteStats } from "./store/store.js";

/** Upper bounds of the latency buckets, in seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The label of requests that matched no route. */
const UNMATCHED = "unmatched";

/** A reply sent as it is rather than as JSON (the app's `send` checks for it). */
export class TextBody {
  constructor(
    readonly contentType: string,
    readonly text: string,
  ) {}
}

interface Latency {
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** In-memory counters of one server process. */
export class Metrics {
  /** `method route status_class` → count. */
  readonly #requests = new Map<string, number>();
  /** `method route` → histogram. */
  readonly #latency = new Map<string, Latency>();
  readonly #authFailures = new Map<Role, number>();
  /** Database code (`SQLITE_…`, `PG_…`) → requests refused for it (store/storage-errors.ts). */
  readonly #storageFailures = new Map<string, number>();

  /** Counts a request answered 503 for a storage fault or contention, by database code. */
  storageFailure(code: string): void {
    this.#storageFailures.set(code, (this.#storageFailures.get(code) ?? 0) + 1);
  }

  /** Counts a finished request; `route` null when none matched. */
  observe(route: Route | null, status: number, durationMs: number): void {
    const base = labels({ method: route?.method ?? UNMATCHED, route: route?.pattern ?? UNMATCHED });
    const key = `${base},status="${Math.floor(status / 100)}xx"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let latency = this.#latency.get(base);
    if (latency === undefined) {
      latency = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(base, latency);
    }
    const seconds = durationMs / 1000;
    BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) latency.buckets[i] = (latency.buckets[i] ?? 0) + 1;
    });
    latency.sum += seconds;
    latency.count += 1;
    // A 401 is a failed authentication; on a public route that is the bootstrap code.
    if (status === 401 && route !== null) {
      this.#authFailures.set(route.role, (this.#authFailures.get(route.role) ?? 0) + 1);
    }
  }

  /** The exposition text, with the audit chain length and write counters read at scrape time. */
  render(auditChainLength: number, writes: WriteStats | null = null): string {
    const out: string[] = [];
    out.push(
      "# HELP keyhole_http_requests_total Requests answered, by route pattern and status class.",
      "# TYPE keyhole_http_requests_total counter",
    );
    for (const [key, count] of this.#requests) {
      out.push(`keyhole_http_requests_total{${key}} ${count}`);
    }
    out.push(
      "# HELP keyhole_http_request_duration_seconds Time to answer, by route pattern.",
      "# TYPE keyhole_http_request_duration_seconds histogram",
    );
    const name = "keyhole_http_request_duration_seconds";
    for (const [base, latency] of this.#latency) {
      BUCKETS.forEach((bound, i) => {
        out.push(`${name}_bucket{${base},le="${bound}"} ${latency.buckets[i] ?? 0}`);
      });
      out.push(`${name}_bucket{${base},le="+Inf"} ${latency.count}`);
      out.push(`${name}_sum{${base}} ${latency.sum}`);
      out.push(`${name}_count{${base}} ${latency.count}`);
    }
    out.push(
      "# HELP keyhole_auth_failures_total Failed authentications (401), by the route's role.",
      "# TYPE keyhole_auth_failures_total counter",
    );
    for (const role of ["agent", "owner", "public"] as const) {
      out.push(`keyhole_auth_failures_total{role="${role}"} ${this.#authFailures.get(role) ?? 0}`);
    }
    out.push(
      "# HELP keyhole_storage_failures_total Requests refused for storage faults or lock " +
        "contention, by SQLite code.",
      "# TYPE keyhole_storage_failures_total counter",
    );
    for (const [code, count] of this.#storageFailures) {
      out.push(`keyhole_storage_failures_total{${labels({ code })}} ${count}`);
    }
    out.push(
      "# HELP keyhole_audit_chain_length Entries in the audit hash chain.",
      "# TYPE keyhole_audit_chain_length gauge",
      `keyhole_audit_chain_length ${auditChainLength}`,
    );
    if (writes !== null) {
      // Group commit: many writes per commit, and one fsync for the commits made while the one
      // before it ran (store/durability-gate.ts). fsyncs ÷ writes is the fsync cost per write.
      for (const [name, help, value] of [
        [
          "keyhole_store_writes_total",
          "Write operations (each audited request is one).",
          writes.operations,
        ],
        [
          "keyhole_store_commits_total",
          "Transactions committed (a batch of writes each).",
          writes.commits,
        ],
        ["keyhole_store_fsyncs_total", "fsyncs of the write-ahead log.", writes.syncs],
      ] as const) {
        if (value === null) continue;
        out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
      }
    }
    return `${out.join("\n")}\n`;
  }
}

/** What the metrics route uses. */
export interface MetricsDeps {
  readonly metrics: Metrics;
  readonly store: Pick<Store, "auditHead" | "writeStats">;
  readonly logger: Pick<Logger, "unexpected">;
}

/** `GET /metrics` (public, like a health check: it holds counts, never names). */
export function metricsRoute(deps: MetricsDeps): Route {
  return {
    method: "GET",
    pattern: "/metrics",
    role: "public",
    handler: async (ctx) => {
      let length: number;
      try {
        length = (await deps.store.auditHead()).size;
      } catch (error) {
        deps.logger.unexpected("metrics: store not answering", error, ctx.requestId);
        throw new KeyholeError("unavailable");
      }
      const text = deps.metrics.render(length, deps.store.writeStats());
      return { status: 200, body: new TextBody("text/plain; version=0.0.4; charset=utf-8", text) };
    },
  };
}

/**
 * `a="x",b="y"`. Values are route patterns and methods from the code, never request input; the
 * escaping (exposition format: backslash, quote, newline) is a second line of defence.
 */
function labels(values: Record<string, string>): string {
  return Object.entries(values)
    .map(
      ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
    )
    .join(",");
}
