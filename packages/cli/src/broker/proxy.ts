/**
 * The broker's proxy core: a node:http request handler that matches a route, fetches the secret
 * for this one call, checks the owner-signed host allowlist, injects the credential and streams the
 * request and response through unbuffered. It never follows redirects, redacts the secret from
 * anything returned, and answers every failure with a JSON error and a code, never a hang.
 */
import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import https from "node:https";
import { pipeline } from "node:stream";
import { CAPABILITY_HEADER } from "./capability.js";
import { createRedactor, redactHeaderValue } from "./redact.js";
import { isLoopbackHost, type Route, SECRET_PLACEHOLDER } from "./routes.js";

/** What the vault hands over for one call: the value and the hosts the owner allows it on. */
export interface SecretGrant {
  readonly value: Uint8Array;
  readonly allowedHosts: readonly string[];
}

/** Options for {@link createBrokerHandler}. */
export interface BrokerHandlerOptions {
  readonly routes: readonly Route[];
  /**
   * Whether this request may use this route (the per-run capability check). Called before any
   * secret is fetched; `query` is the raw query string.
   */
  readonly authorize: (route: Route, req: IncomingMessage, query: string) => boolean;
  /** Fetches the secret for one call; the broker zeroes `value` when the call ends. */
  readonly getSecret: (route: Route) => Promise<SecretGrant>;
  /** Receives one line per call: route, method, host, path, status, duration. */
  readonly log: (line: string) => void;
  /** Upstream inactivity limit before a 504 (default 120 s: models think before the first byte). */
  readonly upstreamTimeoutMs?: number;
  /** Allow `http://` upstreams on loopback hosts. Test-only, as in the route parser. */
  readonly allowPlainHttpLoopbackUpstream?: boolean;
}

/** A request listener that also owns keep-alive upstream connections. */
export type BrokerHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** Closes idle upstream connections. */
  close(): void;
};

/** Broker error codes, each with its HTTP status and the one line a developer reads. */
export const BROKER_ERRORS = {
  not_found: [404, "no broker route matches this path"],
  bad_capability: [401, "missing or invalid keyhole capability for this route"],
  forbidden: [403, "the owner's grant does not allow this secret on this upstream host"],
  secret_unavailable: [
    502,
    "the vault did not hand out the secret (not granted, revoked, or unreachable)",
  ],
  secret_not_injectable: [
    502,
    "the secret's value cannot be put on this request (control characters in a header?)",
  ],
  upstream_unreachable: [502, "the upstream did not answer"],
  upstream_bad_response: [502, "the upstream's answer cannot be passed on (status, or encoding)"],
  upstream_tls_failed: [502, "the upstream's TLS certificate did not verify"],
  upstream_redirect_refused: [502, "the upstream redirected outside the allowed hosts"],
  upstream_timeout: [504, "the upstream did not answer in time"],
  broker_failed: [500, "the broker failed on this request"],
} as const;

/** A code from {@link BROKER_ERRORS}. */
export type BrokerErrorCode = keyof typeof BROKER_ERRORS;

// Node's codes for certificate and handshake failures (e.g. DEPTH_ZERO_SELF_SIGNED_CERT,
// ERR_TLS_CERT_ALTNAME_INVALID, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ERR_SSL_…).
const TLS_FAILURE = /CERT|SSL|TLS|SIGNATURE/;

// RFC 9110 §7.6.1: connection-specific headers never cross a proxy.
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
];
// Credentials a client might send itself; the broker's injection is the only one that goes out.
const CLIENT_CREDENTIALS = ["authorization", "x-api-key"];

function sendError(res: ServerResponse, code: BrokerErrorCode): void {
  if (res.headersSent) {
    // Mid-stream: the status is gone, so cut the stream rather than end it cleanly.
    res.destroy();
    return;
  }
  const [status, message] = BROKER_ERRORS[code];
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

function hopByHop(headers: IncomingHttpHeaders): Set<string> {
  const drop = new Set(HOP_BY_HOP);
  const connection = headers.connection;
  if (typeof connection === "string")
    for (const token of connection.split(",")) drop.add(token.trim().toLowerCase());
  return drop;
}

/**
 * True when the response body reaches the client as the bytes the upstream meant, so the
 * redactor sees the value if it is there: no content coding but identity (the broker asked for
 * identity), no transfer coding but chunked. A response that has no body may say what it likes.
 */
function isReadableBody(
  method: string | undefined,
  status: number,
  headers: IncomingHttpHeaders,
): boolean {
  if (method === "HEAD" || status === 204 || status === 304) return true;
  const content = headers["content-encoding"]?.trim().toLowerCase();
  const transfer = headers["transfer-encoding"]?.trim().toLowerCase();
  return (
    (content === undefined || content === "identity") &&
    (transfer === undefined || transfer === "chunked")
  );
}

/** True when the grant lets the secret go to this upstream (hostname, or host:port). */
export function isHostAllowed(upstream: URL, allowedHosts: readonly string[]): boolean {
  const hostname = upstream.hostname.toLowerCase();
  const host = upstream.host.toLowerCase();
  return allowedHosts.some((h) => {
    const allowed = h.toLowerCase();
    return allowed === hostname || allowed === host;
  });
}

function matchRoute(routes: readonly Route[], path: string): Route | null {
  for (const route of routes)
    if (path === route.prefix || path.startsWith(`${route.prefix}/`)) return route;
  return null;
}

// Paths go into a log line: keep them printable and bounded.
function loggable(path: string): string {
  const safe = path.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c));
  return safe.length > 200 ? `${safe.slice(0, 200)}...` : safe;
}

/** Builds the request listener. Routes are assumed parsed by `parseRoute`. */
export function createBrokerHandler(options: BrokerHandlerOptions): BrokerHandler {
  const timeoutMs = options.upstreamTimeoutMs ?? 120_000;
  const agents = {
    "http:": new http.Agent({ keepAlive: true }),
    // Explicit, so NODE_TLS_REJECT_UNAUTHORIZED cannot turn verification off.
    "https:": new https.Agent({ keepAlive: true, rejectUnauthorized: true }),
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      handle(req, res);
    } catch {
      // Last resort: one bad request must never take the broker down for every agent.
      sendError(res, "broker_failed");
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? "";
    const q = rawUrl.indexOf("?");
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const query = q === -1 ? "" : rawUrl.slice(q + 1);
    const route = rawUrl.startsWith("/") ? matchRoute(options.routes, path) : null;
    const upstream = route === null ? null : new URL(route.upstream);
    const rest = route === null ? path : path.slice(route.prefix.length) || "/";
    let secret: Uint8Array | null = null;

    res.on("close", () => {
      secret?.fill(0);
      secret = null;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const status = res.headersSent ? res.statusCode : 0;
      options.log(
        `broker route=${route?.name ?? "-"} method=${req.method ?? "-"} ` +
          `host=${upstream?.host ?? "-"} path=${loggable(rest)} status=${status} ms=${ms.toFixed(1)}`,
      );
    });

    if (route === null || upstream === null) {
      sendError(res, "not_found");
      return;
    }
    if (
      upstream.protocol === "http:" &&
      (options.allowPlainHttpLoopbackUpstream !== true || !isLoopbackHost(upstream.hostname))
    ) {
      sendError(res, "forbidden");
      return;
    }
    if (!options.authorize(route, req, query)) {
      sendError(res, "bad_capability");
      return;
    }

    options.getSecret(route).then(
      (grant) => {
        if (res.destroyed) {
          grant.value.fill(0);
          return;
        }
        secret = grant.value;
        if (!isHostAllowed(upstream, grant.allowedHosts)) {
          secret.fill(0);
          sendError(res, "forbidden");
          return;
        }
        try {
          forward(req, res, route, upstream, rest, query, grant);
        } catch {
          // Node refuses header values with control characters (a value stored with a trailing
          // newline, say). Answer instead of letting the rejection take the broker down.
          sendError(res, "secret_not_injectable");
        }
      },
      () => sendError(res, "secret_unavailable"),
    );
  };

  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    upstream: URL,
    rest: string,
    query: string,
    grant: SecretGrant,
  ): void {
    const value = Buffer.from(grant.value.buffer, grant.value.byteOffset, grant.value.byteLength);
    // Node's header API takes strings; these copies live only as long as this request.
    const text = value.toString("utf8");
    const needles: Uint8Array[] = [value];
    const drop = hopByHop(req.headers);
    for (const h of CLIENT_CREDENTIALS) drop.add(h);
    drop.add(CAPABILITY_HEADER);
    drop.add("host");
    const headers: OutgoingHttpHeaders = {};
    let params = query;
    const inject = route.inject;
    if (inject.kind === "header") drop.add(inject.name);
    for (const [name, v] of Object.entries(req.headers))
      if (v !== undefined && !drop.has(name)) headers[name] = v;
    headers.host = upstream.host;
    // The redactor cannot see inside compressed bodies.
    headers["accept-encoding"] = "identity";
    if (inject.kind === "header") {
      // A function, so `$&`-style patterns in the value are not interpreted.
      headers[inject.name] = inject.template.replace(SECRET_PLACEHOLDER, () => text);
    } else if (inject.kind === "basic") {
      // RFC 7617 §2; with no user the secret is the user-id and the password is empty.
      const pair = inject.user === undefined ? `${text}:` : `${inject.user}:${text}`;
      const encoded = Buffer.from(pair, "utf8").toString("base64");
      headers.authorization = `Basic ${encoded}`;
      needles.push(Buffer.from(encoded));
    } else {
      const search = new URLSearchParams(query);
      search.delete(inject.param);
      search.append(inject.param, text);
      params = search.toString();
      // The form actually sent (form encoding: space as +) and the percent-encoded form an
      // upstream may echo back after decoding; both are redacted.
      const sent = new URLSearchParams([[inject.param, text]]).toString();
      for (const form of new Set([sent.slice(inject.param.length + 1), encodeURIComponent(text)]))
        if (form !== text) needles.push(Buffer.from(form));
    }

    // The raw value is zeroed by the handler; these are its encoded copies.
    res.on("close", () => {
      for (const needle of needles) needle.fill(0);
    });
    const outbound = (upstream.protocol === "https:" ? https : http).request({
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ""),
      port: upstream.port || undefined,
      method: req.method,
      path: params === "" ? rest : `${rest}?${params}`,
      headers,
      agent: agents[upstream.protocol === "https:" ? "https:" : "http:"],
      timeout: timeoutMs,
    });
    let failure: BrokerErrorCode = "upstream_unreachable";
    outbound.on("timeout", () => {
      failure = "upstream_timeout";
      outbound.destroy();
    });
    outbound.on("error", (error) => {
      const code = (error as { code?: unknown }).code;
      if (failure === "upstream_unreachable" && typeof code === "string" && TLS_FAILURE.test(code))
        failure = "upstream_tls_failed";
      sendError(res, failure);
    });
    // A 101 Switching Protocols: there is nothing to redact a raw socket with, so no upgrade.
    outbound.on("upgrade", (_response, socket) => {
      socket.destroy();
      sendError(res, "upstream_bad_response");
    });
    // Whatever else ends the upstream request without an answer: never leave the client hanging.
    outbound.on("close", () => {
      if (!res.headersSent && !res.writableEnded) sendError(res, failure);
    });
    res.on("close", () => {
      if (!res.writableFinished) outbound.destroy();
    });
    req.pipe(outbound);

    outbound.on("response", (up) => {
      const status = up.statusCode ?? 0;
      // Only a body the redactor can read passes: we asked for identity, so anything else is
      // refused rather than streamed unredacted. A status Node cannot write is refused too.
      if (status < 200 || status > 599 || !isReadableBody(req.method, status, up.headers)) {
        up.resume();
        sendError(res, "upstream_bad_response");
        return;
      }
      const location = up.headers.location;
      if (status >= 300 && status < 400 && location !== undefined) {
        let target: URL | null = null;
        try {
          target = new URL(location, upstream);
        } catch {
          target = null;
        }
        if (target === null || !isHostAllowed(target, grant.allowedHosts)) {
          up.resume();
          sendError(res, "upstream_redirect_refused");
          return;
        }
      }
      const back = hopByHop(up.headers);
      const out: OutgoingHttpHeaders = {};
      for (const [name, v] of Object.entries(up.headers)) {
        if (v === undefined || back.has(name)) continue;
        out[name] = Array.isArray(v)
          ? v.map((x) => redactHeaderValue(x, needles))
          : redactHeaderValue(v, needles);
      }
      try {
        res.writeHead(status, out);
      } catch {
        // A header value Node will not write (it validates what it forwards).
        up.resume();
        sendError(res, "upstream_bad_response");
        return;
      }
      // Streaming clients (SSE) must see the status before the first event.
      res.flushHeaders();
      up.on("error", () => res.destroy());
      pipeline(up, createRedactor(needles), res, () => {});
    });
  }

  return Object.assign(handler, {
    close(): void {
      agents["http:"].destroy();
      agents["https:"].destroy();
    },
  });
}
