/**
 * Test support: a real server on 127.0.0.1, port 0, over a real SQLite file in a temp dir (or a
 * shared PostgreSQL schema), with a settable clock, captured log lines, an audit-failure switch
 * (SQLite only) and optional rate-limit tuning.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LimiterOptions } from "../auth/rate-limit.js";
import type { LogLevel } from "../log.js";
import { type RunningServer, type ServerInternals, startServerWith } from "../server.js";
import { openSqliteStore } from "../store/sqlite.js";
import type { Store } from "../store/store.js";

/** A clock tests move by hand. */
export class TestClock {
  t: number;

  constructor(start = Date.now()) {
    this.t = start;
  }

  readonly now = (): number => this.t;

  advance(ms: number): void {
    this.t += ms;
  }
}

/** A running test server. */
export interface TestServer {
  readonly url: string;
  readonly dataDir: string;
  readonly dbPath: string;
  readonly server: RunningServer;
  readonly clock: TestClock;
  /** Every log line written so far. */
  readonly logs: string[];
  /** While `fail` is true, every audit append fails inside its transaction. */
  readonly auditFault: { fail: boolean };
  /** Closes the server (and, unless `keepDir`, removes the data directory). */
  close(options?: { keepDir?: boolean }): Promise<void>;
}

/** Options of a test server. */
export interface TestServerOptions {
  readonly clock?: TestClock;
  readonly limits?: LimiterOptions;
  readonly maxInFlight?: number;
  /** Passed to the server's internals (connection cap, timeouts). */
  readonly internals?: Pick<
    ServerInternals,
    | "maxConnections"
    | "headersTimeoutMs"
    | "requestTimeoutMs"
    | "timeoutCheckMs"
    | "storagePragma"
    | "maxInFlightPerSource"
    | "bodyTimeoutMs"
    | "healthLimits"
  >;
  readonly logLevel?: LogLevel;
  /** Reuse a data directory (to restart on the same data). */
  readonly dataDir?: string;
  /** Wraps the store (to delay or observe operations). */
  readonly wrapStore?: (store: Store) => Store;
  /** Wraps the store's fsync of its WAL (to fail it). */
  readonly syncHook?: (sync: () => Promise<void>) => Promise<void>;
  /** `ServerOptions.allowMissingRevocations`. */
  readonly allowMissingRevocations?: boolean;
  /** `ServerOptions.metrics`. */
  readonly metrics?: boolean;
  /** Listen address: 127.0.0.1 (default) or ::1. */
  readonly host?: "127.0.0.1" | "::1";
  /** `ServerOptions.trustedProxies`. */
  readonly trustedProxies?: readonly string[];
  /** `ServerOptions.healthPort`. */
  readonly healthPort?: number;
  /**
   * PostgreSQL instead of SQLite (`ServerOptions.databaseUrl` and the key files that go with
   * it; see test-support/postgres.ts). `wrapStore`, `syncHook`, `storagePragma` and
   * `auditFault` act on the SQLite store only.
   */
  readonly database?: TestDatabase;
}

/** A shared database for several test servers. */
export interface TestDatabase {
  readonly url: string;
  readonly schema: string;
  readonly pepperFile: string;
  readonly auditKeyFile: string;
}

/** Starts a server for one test file or test. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "keyhole-server-"));
  const clock = options.clock ?? new TestClock();
  const logs: string[] = [];
  const auditFault = { fail: false };
  const server = await startServerWith(
    {
      dataDir,
      host: options.host ?? "127.0.0.1",
      port: 0,
      logLevel: options.logLevel ?? "info",
      log: (line) => logs.push(line),
      now: clock.now,
      ...(options.allowMissingRevocations === undefined
        ? {}
        : { allowMissingRevocations: options.allowMissingRevocations }),
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      ...(options.trustedProxies === undefined ? {} : { trustedProxies: options.trustedProxies }),
      ...(options.healthPort === undefined ? {} : { healthPort: options.healthPort }),
      ...(options.database === undefined
        ? {}
        : {
            databaseUrl: options.database.url,
            databaseSchema: options.database.schema,
            pepperFile: options.database.pepperFile,
            auditKeyFile: options.database.auditKeyFile,
          }),
    },
    {
      openStore: (path) => {
        const store = openSqliteStore({
          path,
          beforeAuditAppend: () => {
            if (auditFault.fail) throw new Error("injected audit failure");
          },
          ...(options.internals?.storagePragma === undefined
            ? {}
            : { pragmaHook: options.internals.storagePragma }),
          ...(options.syncHook === undefined ? {} : { syncHook: options.syncHook }),
        });
        return options.wrapStore ? options.wrapStore(store) : store;
      },
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
      ...options.internals,
    },
  );
  return {
    url: server.url,
    dataDir,
    dbPath: join(dataDir, "keyhole.db"),
    server,
    clock,
    logs,
    auditFault,
    close: async (closeOptions) => {
      await server.close();
      if (!closeOptions?.keepDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
