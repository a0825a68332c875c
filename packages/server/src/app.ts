/**
 * The request handler: read the body (bounded), route, authenticate, run the handler, and map
 * every error to its status in one place (core's `ERROR_STATUS` via `KeyholeError.status`).
 * Unknown exceptions become a generic 500 `internal`, logged by name only. One log line per
 * request, without headers, bodies or query values.
 *
 * Every request gets a fresh random id (12 bytes, base64url), sent back in `x-request-id` and put
 * in each log line of the request. A client's own `x-request-id` is ignored: echoing it into the
 * logs would let a client forge or split log lines.
 *
 * Audit: a handler's store operation writes the request's entry in its own transaction. When a
 * request to an audited route fails *after* authentication and before any entry was committed
 * (bad body, unknown name, lost race), one fallback entry records the refusal, so every attempt
 * leaves exactly one entry; if even that write fails, the answer is a 500 (fail closed).
 *
 * Storage faults (a full or read-only disk, store/storage-errors.ts) are answered with a coded
 * 503 and `Retry-After`, logged once with their SQLite code, and take `/readyz` down until a
 * write succeeds again; the failed transaction has been rolled back.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { encodeBase64url, isKeyholeError, isWireErrorCode, KeyholeError } from "@keyhole/core";
import type { AuditKey } from "./audit/audit-key.js";
import { type AuthState, memoryAuthState } from "./auth/auth-state.js";
import type { BootstrapCode } from "./auth/bootstrap.js";
import { FailedAuthRecorder } from "./auth/failed-auth.js";
import { AuthGate } from "./auth/gate.js";
import type { PepperRing } from "./auth/pepper.js";
import type { LimiterOptions } from "./auth/rate-limit.js";
import type { RevokedTokens } from "./auth/revoked-tokens.js";
import { isBodyTimeout, MAX_BODY_BYTES, readBody } from "./http/body.js";
import { normalizeAddress, sourceKey, TrustedProxies } from "./http/client-address.js";
import { parseQuery, RequestContext } from "./http/context.js";
import { ALWAYS_ADMITTED, DEFAULT_MAX_TURN_MS, InFlightLimit } from "./http/in-flight.js";
import { newRequestId } from "./http/request-id.js";
import { type Route, type RouteMatch, Router } from "./http/router.js";
import type { Logger } from "./log.js";
import { Metrics, metricsRoute, TextBody } from "./metrics.js";
import { agentRoutes } from "./routes/agent.js";
import { ownerAgentRoutes } from "./routes/owner-agents.js";
import { ownerAuditRoutes } from "./routes/owner-audit.js";
import { ownerGrantRoutes } from "./routes/owner-grants.js";
import { ownerSecretRoutes } from "./routes/owner-secrets.js";
import { publicRoutes } from "./routes/public.js";
import { StorageHealth, storageCause } from "./store/storage-errors.js";
import type { Store } from "./store/store.js";
import type { VaultState } from "./vault-state.js";

/** Everything the app is built from. */
export interface AppDeps {
  readonly store: Store;
  readonly vault: VaultState;
  readonly peppers: PepperRing;
  /** Token ids that revoke or rotate retired, kept outside the database. */
  readonly revoked: RevokedTokens;
  readonly auditKey: AuditKey;
  readonly bootstrap: BootstrapCode;
  readonly clock: () => number;
  readonly logger: Logger;
  /** Failed-authentication limits (tests shrink them). */
  readonly limits?: LimiterOptions;
  /**
   * Nonces and failure limits (auth-state.ts): shared through the database when several servers
   * use one; default in memory, with `limits`.
   */
  readonly authState?: AuthState;
  /** Serve `GET /metrics`; default false (then it is a 404 like any unknown path). */
  readonly metrics?: boolean;
  /** Requests in flight before new ones are shed with 503 (tests shrink it). */
  readonly maxInFlight?: number;
  /** Requests one source may have in flight before its new ones are shed (tests shrink it). */
  readonly maxInFlightPerSource?: number;
  /** Time a request body has to arrive once the headers are in, in ms (tests shrink it). */
  readonly bodyTimeoutMs?: number;
  /** CIDR ranges of reverse proxies whose `X-Forwarded-For` is believed; default none. */
  readonly trustedProxies?: readonly string[];
}

/** The request handler and its background duty. */
export interface App {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Writes `auth.failed` counts still held back by the throttle (all of them with `force`). */
  flushFailedAuth(force?: boolean): Promise<void>;
  /** Drops expired nonces and failure counts (the shared ones live in the database). */
  pruneAuthState(): Promise<void>;
  /**
   * From now on every answer closes its connection (the server is stopping): a keep-alive
   * client cannot keep a stopping server busy, and each connection ends after the answer it is
   * waiting for rather than being cut by the forced close.
   */
  drain(): void;
}

const MAX_USER_AGENT = 256;
const MAX_LOGGED_PATH = 512;

const SHED = "the server is at capacity; retry shortly";

/** Builds the app. */
export function createApp(deps: AppDeps): App {
  const inFlight = new InFlightLimit(
    deps.maxInFlight,
    DEFAULT_MAX_TURN_MS,
    deps.maxInFlightPerSource,
  );
  let draining = false;
  /** `send`, closing the connection after the answer once the server is stopping. */
  const answer: typeof send = (res, requestId, status, body, headers = {}) =>
    send(res, requestId, status, body, draining ? { ...headers, connection: "close" } : headers);
  const proxies = new TrustedProxies(deps.trustedProxies);
  const failures = new FailedAuthRecorder(deps.store, deps.clock);
  // Created now: owner requests signed before this moment are refused (see nonce-cache.ts).
  const authState = deps.authState ?? memoryAuthState(deps.clock(), deps.limits);
  const gate = new AuthGate({
    store: deps.store,
    peppers: deps.peppers,
    revoked: deps.revoked,
    vault: deps.vault,
    ...authState,
    failures,
  });
  const metrics = deps.metrics === true ? new Metrics() : null;
  const storage = new StorageHealth(deps.clock);
  const router = new Router([
    ...publicRoutes({ ...deps, gate, storage }),
    ...(metrics === null ? [] : [metricsRoute({ ...deps, metrics })]),
    ...agentRoutes(deps),
    ...ownerAgentRoutes(deps),
    ...ownerSecretRoutes(deps),
    ...ownerGrantRoutes(deps),
    ...ownerAuditRoutes(deps),
  ]);

  /**
   * The route a request names, matched once before its body is read (the route sets the body's
   * limit), or the error matching threw (an undecodable path), to be answered after the read.
   */
  function matchRoute(method: string, path: string): { match: RouteMatch | null; error?: unknown } {
    try {
      return { match: router.match(method, path) };
    } catch (error) {
      return { match: null, error };
    }
  }

  /** The body limit of a request to `path` with `match`. */
  function bodyLimit(path: string, match: RouteMatch | null): number {
    // Health paths take no slot (http/in-flight.ts), whatever the method: so they take no body
    // either, or a flood of them could hold 256 KiB each outside every cap.
    if (ALWAYS_ADMITTED.has(path)) return 0;
    return match?.route.maxBodyBytes ?? MAX_BODY_BYTES;
  }

  async function run(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    addressProblem: string | null,
  ): Promise<{
    status: number;
    route: Route | null;
  }> {
    let route: Route | null = null;
    try {
      const matched = matchRoute(ctx.method, ctx.path);
      // Bounded, and first: an unread body would otherwise be drained, unbounded, after the reply.
      ctx.rawBody = await readBody(req, bodyLimit(ctx.path, matched.match), deps.bodyTimeoutMs);
      // A trusted proxy sent an X-Forwarded-For we cannot read: no client address to enforce.
      if (addressProblem !== null) throw new KeyholeError("bad_request", addressProblem);
      ctx.query = parseQuery(ctx.queryText);
      if (!ctx.path.startsWith("/")) throw new KeyholeError("not_found");
      checkPercentEncoding(ctx.path);
      if (matched.error !== undefined) throw matched.error;
      const match = matched.match;
      if (match === null) throw new KeyholeError("not_found");
      route = match.route;
      ctx.params = match.params;
      for (const key of ctx.query.keys()) {
        if (!route.query?.includes(key))
          throw new KeyholeError("bad_request", "unknown query parameter");
      }
      await gate.authenticate(ctx, route);
      const reply = await route.handler(ctx);
      answer(res, ctx.requestId, reply.status, reply.body);
      return { status: reply.status, route };
    } catch (error) {
      const failure = await toFailure(error, ctx, route);
      const headers: Record<string, string> = {};
      if (failure.code === "rate_limited" || failure.retryAfterSeconds !== undefined) {
        headers["retry-after"] = String(failure.retryAfterSeconds ?? 1);
      }
      // A body that did not come in time: 408, like slow headers (http/client-error.ts).
      const status = isBodyTimeout(error) ? 408 : failure.status;
      // Stop reading an oversized or stalled body: close the connection rather than drain it.
      if (failure.code === "payload_too_large" || status === 408) headers.connection = "close";
      answer(
        res,
        ctx.requestId,
        status,
        {
          error: { code: failure.code, message: failure.message },
        },
        headers,
      );
      return { status, route };
    }
  }

  /** Maps any error to a wire error, writing the fallback audit entry where one is due. */
  async function toFailure(
    error: unknown,
    ctx: RequestContext,
    route: Route | null,
  ): Promise<KeyholeError> {
    if (!isKeyholeError(error) || !isWireErrorCode(error.code)) {
      deps.logger.unexpected("unexpected error", error, ctx.requestId);
      return new KeyholeError("internal");
    }
    if (noteStorageFailure(error, ctx)) return error;
    if (error.status >= 500 || ctx.audited || ctx.principal === null) return error;
    try {
      if (error.code === "unauthenticated" && ctx.principal.kind === "agent") {
        // The token stopped working during the request (revoked or rotated meanwhile). Its
        // token id gives the failure the agent's own throttle slot, so the entry names the
        // agent even when junk from the same address came first.
        return await gate.fail(
          ctx,
          "agent_token_gone",
          encodeBase64url(ctx.principal.tokenId),
          ctx.principal.agent.id,
        );
      }
      if (route?.action === undefined) return error;
      const action = route.action;
      await ctx.audit((request) =>
        deps.store.appendAudit({
          ...request,
          action,
          result: auditResult(error.code),
          agentId: ctx.principal?.kind === "agent" ? ctx.principal.agent.id : "",
          secretId: "",
          secretVersion: 0,
          detail: error.code,
        }),
      );
      return error;
    } catch (failure) {
      if (
        isKeyholeError(failure) &&
        (failure.code === "unauthenticated" || failure.code === "rate_limited")
      ) {
        return failure;
      }
      // The disk filled up between the operation and its fallback entry: still a coded 503.
      if (isKeyholeError(failure) && noteStorageFailure(failure, ctx)) return failure;
      deps.logger.unexpected("audit write failed", failure, ctx.requestId);
      return new KeyholeError("internal");
    }
  }

  /**
   * For an answer made from a storage fault: one log line naming the database code (`SQLITE_…`,
   * `PG_…`; never the error's message), a count, and readiness down. False for any other error.
   */
  function noteStorageFailure(error: KeyholeError, ctx: RequestContext): boolean {
    const cause = storageCause(error);
    if (cause === null) return false;
    deps.logger.event("error", "storage failure", {
      request_id: ctx.requestId,
      storage_code: cause,
      answer: error.code,
    });
    metrics?.storageFailure(cause);
    if (error.code === "storage_unavailable") storage.failed();
    return true;
  }

  return {
    handle(req, res) {
      const started = performance.now();
      const target = req.url ?? "";
      const q = target.indexOf("?");
      const client = proxies.resolve(
        normalizeAddress(req.socket.remoteAddress),
        req.headers["x-forwarded-for"],
      );
      const clientIp = client.address;
      const ctx = new RequestContext(
        {
          requestId: newRequestId(),
          method: req.method ?? "",
          target,
          path: q < 0 ? target : target.slice(0, q),
          queryText: q < 0 ? "" : target.slice(q + 1),
          clientIp,
          source: sourceKey(clientIp),
          userAgent: cleanUserAgent(req.headers["user-agent"]),
          contentType: req.headers["content-type"],
          authorization: req.headers.authorization,
          now: deps.clock(),
        },
        deps.clock,
      );
      const release = inFlight.admit(ctx.path, hasBody(req) ? ctx.source : null);
      if (release === null) {
        // The connection is closed: an unread body is not drained, and a flooding client must
        // reconnect through the accept queue (one connection per loop turn) before it is
        // served again. Keeping it open was measured worse (bench/flood.mjs): shed clients
        // resent at once, and kept-alive health checks waited 3.5 s instead of 0.9 s.
        answer(
          res,
          ctx.requestId,
          503,
          { error: { code: "unavailable", message: SHED } },
          { "retry-after": "1", connection: "close" },
        );
        metrics?.observe(null, 503, performance.now() - started);
        return;
      }
      res.once("close", release);
      run(req, res, ctx, client.ok ? null : client.problem)
        .then(({ status, route }) => {
          // A 2xx on an audited route committed a write (its entry): the storage works.
          if (status < 300 && route?.action !== undefined) storage.succeeded();
          const durationMs = performance.now() - started;
          metrics?.observe(route, status, durationMs);
          deps.logger.request({
            requestId: ctx.requestId,
            method: ctx.method,
            path: ctx.path.slice(0, MAX_LOGGED_PATH),
            route: route?.pattern ?? null,
            status,
            durationMs,
            actor: ctx.actorId === "" ? null : ctx.actorId,
          });
        })
        .catch((error: unknown) => {
          deps.logger.unexpected("request failed", error, ctx.requestId);
          res.destroy();
        });
    },
    flushFailedAuth: (force = false) => failures.flush(force),
    pruneAuthState: () => authState.prune(deps.clock()),
    drain: () => {
      draining = true;
    },
  };
}

function checkPercentEncoding(path: string): void {
  try {
    decodeURIComponent(path);
  } catch {
    throw new KeyholeError("bad_request", "malformed percent-encoding in the path");
  }
}

/** The audit `result` of a refused request. */
function auditResult(code: string): string {
  if (code === "not_found") return "not_found";
  if (code === "conflict") return "conflict";
  if (code === "unauthenticated") return "unauthenticated";
  return "denied";
}

function cleanUserAgent(value: string | undefined): string {
  if (value === undefined) return "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we strip
  return value.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, MAX_USER_AGENT);
}

/** Whether a request declares a body (one that could be held back to keep its slot). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function send(
  res: ServerResponse,
  requestId: string,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = body instanceof TextBody ? body.text : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": body instanceof TextBody ? body.contentType : "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-request-id": requestId,
    ...headers,
  });
  res.end(text);
}
