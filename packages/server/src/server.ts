/**
 * Starting and stopping the Keyhole server: prepare the data directory, open the store, make the
 * vault id and bootstrap code at first start, and listen on plain `node:http` (or `node:https`).
 *
 * The store is SQLite in the data directory, or, with `databaseUrl`, PostgreSQL shared by several
 * servers (issue 6). Either way the data directory stays per server: its lock, revoked-tokens
 * list and bootstrap code. The pepper and the audit key must then be the same on every server,
 * so they come from files the operator gives (`pepperFile`, `auditKeyFile`), never from the
 * database: a stolen database alone must still not let anyone test token guesses.
 */
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { isKeyholeError, KeyholeError, newId } from "@keyhole/core";
import { createApp } from "./app.js";
import { auditKeyFromSeed } from "./audit/audit-key.js";
import type { AuthState } from "./auth/auth-state.js";
import { BootstrapCode, newBootstrapCode } from "./auth/bootstrap.js";
import { PepperRing } from "./auth/pepper.js";
import type { LimiterOptions } from "./auth/rate-limit.js";
import { RevokedTokens } from "./auth/revoked-tokens.js";
import {
  currentOwner,
  loadOrCreateKeyFile,
  loadOrCreateTextFile,
  prepareDataDir,
  readKeyFile,
  removeFile,
} from "./data-dir.js";
import { lockDataDir } from "./data-lock.js";
import {
  checkDatabaseUrl,
  checkSchemaName,
  type DatabaseTarget,
  databaseStartupError,
} from "./database-url.js";
import { TrustedProxies } from "./http/client-address.js";
import { answerClientError } from "./http/client-error.js";
import { type HealthLimits, startHealthListener } from "./http/health-listener.js";
import { Logger, type LogLevel } from "./log.js";
import type { SharedKeyIds } from "./store/postgres-shared-keys.js";
import { openSqliteStore } from "./store/sqlite.js";
import type { Store } from "./store/store.js";
import { VaultState } from "./vault-state.js";

/** How to run the server. */
export interface ServerOptions {
  /** The data directory (created 0700 if missing); one per server, even on a shared database. */
  dataDir: string;
  /**
   * `postgres://user:password@host:port/database`: keep the data in PostgreSQL instead of
   * `DATA_DIR/keyhole.db`, so several servers can share it. Never logged (it may hold a
   * password); start-up errors name only its `host:port`. Needs `pepperFile` and `auditKeyFile`.
   */
  databaseUrl?: string;
  /**
   * The PostgreSQL schema Keyhole's tables live in (lower-case letters, digits, `_`; it must
   * exist). Default: the database user's default, normally `public`. Only with `databaseUrl`.
   */
  databaseSchema?: string;
  /**
   * The pepper (exactly 32 random bytes, mode 0600, owned by this user), the same file content
   * on every server sharing `databaseUrl`. Required with `databaseUrl` and refused without it: a
   * SQLite server keeps its own in `DATA_DIR/pepper`, and a pepper that came from a flag one day
   * and from the data directory the next would silently lock every agent out.
   */
  pepperFile?: string;
  /**
   * The audit checkpoint signing seed (exactly 32 random bytes, mode 0600), shared like
   * `pepperFile`, so every server signs checkpoints with the key the owner pinned. Required with
   * `databaseUrl`, refused without it.
   */
  auditKeyFile?: string;
  /** Address to listen on; default `127.0.0.1`. */
  host?: string;
  /** Port; default 8250, 0 for any free port. */
  port?: number;
  /** Path of a PEM certificate (chain); with `tlsKey`, the server speaks HTTPS. */
  tlsCert?: string;
  /** Path of the PEM private key for `tlsCert`. */
  tlsKey?: string;
  /** Default `info`: one line per request. */
  logLevel?: LogLevel;
  /** Where log lines go; default stderr. */
  log?: (line: string) => void;
  /**
   * Start even though the vault has an owner and `DATA_DIR/revoked-tokens` is missing,
   * re-creating it from the retired token ids the database records (a loud warning is logged).
   * Revocations made after the database's last backup are then forgotten. Default false: such a
   * start is refused with `config_error`.
   */
  allowMissingRevocations?: boolean;
  /**
   * Serve `GET /metrics` (Prometheus text format: request counts and latencies by route pattern,
   * failed authentications, audit chain length). Default false: the path is then a 404.
   */
  metrics?: boolean;
  /**
   * CIDR ranges (or single addresses) of reverse proxies in front of the server. Only from
   * these is `X-Forwarded-For` read for the client address that rate limits, agent CIDR
   * allowlists and the audit log use. Default none: the header is ignored.
   */
  trustedProxies?: readonly string[];
  /**
   * Also answer `GET /healthz` and `GET /readyz` (only those, plain HTTP) on this port of the
   * same host, 0 for any free port: probes that open a new connection each time are then not
   * queued behind a flood on the main port (http/health-listener.ts). Default: none.
   */
  healthPort?: number;
  /** The server clock (ms since the epoch), for tests; default `Date.now`. */
  now?: () => number;
}

/** A listening server. */
export interface RunningServer {
  /** `http(s)://host:port`, no trailing slash. */
  url: string;
  port: number;
  vaultId: string;
  /** The code `POST /v1/init` needs, while the vault has no owner; else null. */
  bootstrapCode: string | null;
  /** `http://host:port` of the health listener (`healthPort`), or null. */
  healthUrl: string | null;
  /** Stops accepting, finishes in-flight requests (5 s at most) and closes the store. */
  close(): Promise<void>;
}

/** The default port. */
export const DEFAULT_PORT = 8250;

/** Hooks for tests: their own store (fault injection) and rate-limit tuning. */
export interface ServerInternals {
  /** Opens the SQLite store at `path` (not used with `databaseUrl`). */
  readonly openStore?: (path: string) => Store;
  readonly limits?: LimiterOptions;
  readonly maxInFlight?: number;
  /** Requests one source may have in flight (default 32, http/in-flight.ts). */
  readonly maxInFlightPerSource?: number;
  /** Time a body has to arrive once its headers are in (default 10 s, http/body.ts). */
  readonly bodyTimeoutMs?: number;
  readonly maxConnections?: number;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly timeoutCheckMs?: number;
  /** The health listener's timeouts and connection cap. */
  readonly healthLimits?: HealthLimits;
  /** Runs PRAGMAs on the SQLite connection (storage fault injection: a full or read-only disk). */
  readonly storagePragma?: (run: (pragma: string) => unknown) => void;
  /**
   * With PostgreSQL, keep the driver's stray connection-failure rejections from ending the
   * process (store/postgres-pool.ts). The real server does; tests leave them to node:test.
   */
  readonly guardDriverRejections?: boolean;
}

/** Starts the server. */
export function startServer(options: ServerOptions): Promise<RunningServer> {
  return startServerWith(options, { guardDriverRejections: true });
}

/** Starts the server with test hooks (not part of the package's public API). */
export async function startServerWith(
  options: ServerOptions,
  internals: ServerInternals = {},
): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? DEFAULT_PORT;
  if (typeof options.dataDir !== "string" || options.dataDir === "") {
    throw new KeyholeError("config_error", "a data directory is required");
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new KeyholeError("config_error", "the port must be an integer from 0 to 65535");
  }
  const healthPort = options.healthPort;
  if (
    healthPort !== undefined &&
    (!Number.isInteger(healthPort) || healthPort < 0 || healthPort > 65535)
  ) {
    throw new KeyholeError("config_error", "the health port must be an integer from 0 to 65535");
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new KeyholeError("config_error", "TLS needs both a certificate and a key");
  }
  const database = checkDatabaseOptions(options);
  // Checked before anything is created: a typo here must not start a server that trusts nobody.
  const trustedProxies = options.trustedProxies ?? [];
  const wideProxyRanges = new TrustedProxies(trustedProxies).wideRanges();
  const clock = options.now ?? Date.now;
  const logger = new Logger(
    options.logLevel ?? "info",
    options.log ?? ((line) => process.stderr.write(`${line}\n`)),
  );
  if (wideProxyRanges.length > 0) {
    logger.event(
      "error",
      "a --trusted-proxy range is wider than one subnet: any host in it can set the client " +
        "address (and so pass agent --cidr limits and dodge rate limits) with X-Forwarded-For; " +
        "list the proxies themselves",
      { ranges: wideProxyRanges.join(",") },
    );
  }
  // Shared keys are read first: a wrong one is refused before the data directory is made.
  const sharedKeys = database === null ? null : readSharedKeys(options);
  const files = prepareDataDir(options.dataDir);
  const keys = sharedKeys ?? {
    pepper: loadOrCreateKeyFile(files.pepper, 32),
    auditSeed: loadOrCreateKeyFile(files.auditKey, 32),
  };
  const peppers = new PepperRing(keys.pepper);
  const auditKey = auditKeyFromSeed(keys.auditSeed);
  const tls =
    options.tlsCert !== undefined && options.tlsKey !== undefined
      ? { cert: readFileSync(options.tlsCert), key: readFileSync(options.tlsKey) }
      : null;

  // Everything before this only reads or creates files; from here on the directory is ours.
  const lock = lockDataDir(options.dataDir);
  let store: Store;
  // Null: in memory (one server); shared through the database otherwise (auth/auth-state.ts).
  let authState: AuthState | null = null;
  try {
    if (database === null) {
      const pragmaHook = internals.storagePragma;
      store = (
        internals.openStore ??
        ((path) => openSqliteStore(pragmaHook === undefined ? { path } : { path, pragmaHook }))
      )(files.db);
    } else {
      const keyIds = { pepperKid: peppers.current.kid, auditPublicKey: auditKey.publicKey };
      ({ store, authState } = await openDatabase(database, keyIds, clock(), logger, internals));
      logger.event("info", "storage: PostgreSQL", { database: database.target.endpoint });
    }
  } catch (error) {
    lock.release();
    throw error;
  }
  try {
    const vaultRecord = await store.ensureVault(newId("vault"), clock()).catch((error: unknown) => {
      // The first write: a database that went away or refuses writes is said so in one line.
      throw database === null ? error : databaseStartupError(error, database.target.endpoint);
    });
    // Once the vault has an owner the file existed: a missing one is refused, unless allowed.
    // On a shared database a server with a new data directory joins a running vault: its list
    // starts from the database's retired tokens, the shared record of every revoke and rotate.
    const initialised = vaultRecord.ownerSignPk !== null;
    const mayCreate = !initialised || options.allowMissingRevocations === true || database !== null;
    const revoked = RevokedTokens.open(
      files.revokedTokens,
      currentOwner(),
      mayCreate ? "create" : "refuse",
    );
    if (initialised && revoked.created && database !== null) {
      logger.event("info", "revoked-tokens created from the shared database's retired tokens");
    } else if (initialised && revoked.created) {
      logger.event(
        "error",
        "revoked-tokens was missing and has been re-created from the database " +
          "(--allow-missing-revocations): any revoke or rotate made after the database's last " +
          "backup is forgotten; revoke or rotate every agent that may be affected",
      );
    }
    await reconcileRevoked(revoked, store, logger);
    let code: string | null = null;
    if (vaultRecord.ownerSignPk === null) {
      code = loadOrCreateTextFile(files.bootstrapCode, newBootstrapCode);
    } else {
      removeFile(files.bootstrapCode);
    }
    const vault = new VaultState(store, vaultRecord);
    const bootstrap = new BootstrapCode(files.bootstrapCode, code);
    const app = createApp({
      store,
      vault,
      peppers,
      revoked,
      auditKey,
      bootstrap,
      clock,
      logger,
      metrics: options.metrics === true,
      trustedProxies,
      ...(internals.limits === undefined ? {} : { limits: internals.limits }),
      ...(authState === null ? {} : { authState }),
      ...(internals.maxInFlight === undefined ? {} : { maxInFlight: internals.maxInFlight }),
      ...(internals.maxInFlightPerSource === undefined
        ? {}
        : { maxInFlightPerSource: internals.maxInFlightPerSource }),
      ...(internals.bodyTimeoutMs === undefined ? {} : { bodyTimeoutMs: internals.bodyTimeoutMs }),
    });
    // Node checks the header and request timeouts below only this often (default 30 s).
    const checking = { connectionsCheckingInterval: internals.timeoutCheckMs ?? 2_000 };
    const server: Server = tls
      ? createHttpsServer({ ...tls, ...checking }, app.handle)
      : createHttpServer(checking, app.handle);
    server.on("clientError", answerClientError);
    // Slow clients cannot hold a connection forever.
    server.requestTimeout = internals.requestTimeoutMs ?? 30_000;
    server.headersTimeout = internals.headersTimeoutMs ?? 15_000;
    server.keepAliveTimeout = 5_000;
    // A last resort against running out of file descriptors: beyond it new sockets are closed.
    server.maxConnections = internals.maxConnections ?? 1024;
    await listen(server, port, host);
    const actualPort = (server.address() as AddressInfo).port;
    let health: Server | null = null;
    if (healthPort !== undefined) {
      try {
        health = await startHealthListener(app.handle, host, healthPort, internals.healthLimits);
      } catch (error) {
        await stop(server);
        throw error;
      }
    }
    const flush = setInterval(() => {
      app
        .flushFailedAuth()
        .catch((error: unknown) => logger.unexpected("audit flush failed", error));
      app
        .pruneAuthState()
        .catch((error: unknown) => logger.unexpected("auth state prune failed", error));
    }, 5_000);
    flush.unref();
    let closing: Promise<void> | null = null;
    const url = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${actualPort}`;
    if (!tls && !isLoopback(host)) {
      logger.event(
        "error",
        "listening on a non-loopback address without TLS: use a TLS proxy or --tls-cert",
      );
    }
    return {
      url,
      port: actualPort,
      vaultId: vaultRecord.vaultId,
      bootstrapCode: bootstrap.code,
      healthUrl:
        health === null
          ? null
          : `http://${host.includes(":") ? `[${host}]` : host}:${(health.address() as AddressInfo).port}`,
      close: () => {
        closing ??= (async () => {
          clearInterval(flush);
          app.drain();
          await Promise.all([stop(server), health === null ? null : stop(health)]);
          await app
            .flushFailedAuth(true)
            .catch((error: unknown) => logger.unexpected("audit flush failed", error));
          await store.close();
          lock.release();
        })();
        return closing;
      },
    };
  } catch (error) {
    await store.close();
    lock.release();
    throw error;
  }
}

/** A checked `databaseUrl` with its schema. */
interface DatabaseChoice {
  readonly target: DatabaseTarget;
  readonly schema: string | undefined;
}

/**
 * Checks the database options together, before anything is created: the URL and schema, and
 * the key files that go with a shared database (and only with one). Null: SQLite.
 */
function checkDatabaseOptions(options: ServerOptions): DatabaseChoice | null {
  const { databaseUrl, databaseSchema, pepperFile, auditKeyFile } = options;
  if (databaseUrl === undefined) {
    if (databaseSchema !== undefined) {
      throw new KeyholeError("config_error", "--database-schema needs --database-url");
    }
    if (pepperFile !== undefined || auditKeyFile !== undefined) {
      throw new KeyholeError(
        "config_error",
        "--pepper-file and --audit-key-file (KEYHOLE_PEPPER_FILE, KEYHOLE_AUDIT_KEY_FILE) go " +
          "with --database-url only: a server on its own SQLite database keeps its pepper and " +
          "audit key in its data directory",
      );
    }
    return null;
  }
  const target = checkDatabaseUrl(databaseUrl);
  if (databaseSchema !== undefined) checkSchemaName(databaseSchema);
  if (pepperFile === undefined || auditKeyFile === undefined) {
    throw new KeyholeError(
      "config_error",
      "with --database-url, every server sharing the database must use the same pepper and " +
        "audit key, so they are not kept in the data directory: give --pepper-file and " +
        "--audit-key-file (or KEYHOLE_PEPPER_FILE and KEYHOLE_AUDIT_KEY_FILE), two files of " +
        "32 random bytes, mode 0600, copied to every server",
    );
  }
  return { target, schema: databaseSchema };
}

/**
 * The pepper and the audit key seed of a shared database, from the operator's files, which must
 * exist (a SQLite server's own live in its data directory, created at first start).
 */
function readSharedKeys(options: ServerOptions): { pepper: Uint8Array; auditSeed: Uint8Array } {
  // Both checked present by checkDatabaseOptions.
  const pepper = readKeyFile(options.pepperFile as string, 32);
  const auditSeed = readKeyFile(options.auditKeyFile as string, 32);
  // One key as both an HMAC key and a signing seed: a mistake worth refusing (the same file
  // given twice, or a copy of it).
  if (Buffer.from(pepper).equals(Buffer.from(auditSeed))) {
    throw new KeyholeError(
      "config_error",
      "--pepper-file and --audit-key-file hold the same key: make two different ones",
    );
  }
  return { pepper, auditSeed };
}

/**
 * Opens the PostgreSQL store. The driver is imported here only, so a SQLite server never loads
 * it. Any failure becomes one coded line naming host:port, never the URL.
 */
async function openDatabase(
  database: DatabaseChoice,
  keyIds: SharedKeyIds,
  since: number,
  logger: Logger,
  internals: Pick<ServerInternals, "limits" | "guardDriverRejections">,
): Promise<{ store: Store; authState: AuthState }> {
  let driver: typeof import("./store/postgres.js");
  let shared: typeof import("./auth/pg-auth-state.js");
  try {
    [driver, shared] = await Promise.all([
      import("./store/postgres.js"),
      import("./auth/pg-auth-state.js"),
    ]);
  } catch {
    throw new KeyholeError(
      "config_error",
      "the PostgreSQL driver (npm package postgres) could not be loaded; reinstall Keyhole",
    );
  }
  try {
    const { store, sql } = await driver.openPostgresBackend({
      url: database.target.url,
      ...(database.schema === undefined ? {} : { schema: database.schema }),
    });
    try {
      await driver.checkSharedKeys(sql, keyIds, since);
    } catch (error) {
      await store.close().catch(() => {});
      // Keys that differ are said as they are; a database failure as any other below.
      if (isKeyholeError(error) && error.code === "config_error") throw new KeysDiffer(error);
      throw error;
    }
    if (internals.guardDriverRejections === true) {
      driver.guardDriverRejections((code) =>
        logger.event("error", "database connection failed", { storage_code: `PG_${code}` }),
      );
    }
    // A limiter that falls back to this server's own counts says so, by code only.
    const onError = (error: unknown) => logger.unexpected("shared rate limit unavailable", error);
    return {
      store,
      authState: shared.postgresAuthState(sql, since, onError, internals.limits),
    };
  } catch (error) {
    if (error instanceof KeysDiffer) throw error.reason;
    throw databaseStartupError(error, database.target.endpoint);
  }
}

/** Carries `checkSharedKeys`'s refusal past the mapping of database failures. */
class KeysDiffer extends Error {
  constructor(readonly reason: KeyholeError) {
    super(reason.message);
  }
}

/**
 * Brings `revoked-tokens` up to date with the database (a crash between a revoke's commit and
 * its append), then warns about any agent whose live token is on the list: the database was
 * restored from a copy older than that revoke or rotate. The list keeps such a token out; the
 * owner should revoke or rotate the agent again so the database agrees.
 */
async function reconcileRevoked(
  revoked: RevokedTokens,
  store: Store,
  logger: Logger,
): Promise<void> {
  const added = await revoked.reconcile(store);
  if (added > 0) {
    logger.event("info", "retired token ids re-added to revoked-tokens", { count: added });
  }
  for (const tokenId of revoked.tokenIds()) {
    const lookup = await store.findAgentByTokenId(tokenId);
    if (lookup === null || lookup.agent.revokedAt !== null) continue;
    logger.event(
      "error",
      "an agent's token is on the revoked list but live in the database (restored from an " +
        "older copy?); it cannot authenticate: revoke or rotate the agent again",
      { agent_id: lookup.agent.id },
    );
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), 5_000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}
