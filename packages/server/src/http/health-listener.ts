/**
 * `keyhole server --health-port`: a second listener that answers only `GET /healthz` and
 * `GET /readyz` (through the app, so readiness is the same), plain HTTP, on the server's host.
 *
 * Why: under a flood the main listener's accept queue is full, and Node accepts one connection
 * per event-loop turn per listener, so a probe that opens a new connection each time (as the
 * kubelet does) waits behind the flood and times out (bench/flood.mjs: about 20% of probes).
 * A listener of its own has a queue of its own: its probes are accepted on the next turn.
 *
 * Its own limits are tight, since a probe sends its request at once and gets a few bytes back.
 * A connection silent for 2 s is closed (Node's headers timeout covers only a request that has
 * begun, so a connection that never sends a byte was otherwise kept for good), as is one still
 * sending its headers after 2 s (checked every 500 ms, not Node's default 30 s) or idle 1 s after
 * an answer. Up to 256 connections are open at once, at most 16 from one source (an IPv4 address
 * or IPv6 /64): one host opening idle connections cannot fill the cap and lock the prober out,
 * and connections from many hosts hold it for about 2 s, not 30.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { normalizeAddress, sourceKey } from "./client-address.js";
import { answerClientError } from "./client-error.js";
import { ALWAYS_ADMITTED } from "./in-flight.js";

/** The health listener's connection limits (tests shrink them). */
export interface HealthLimits {
  /** Time for a request's headers to arrive, in ms; the whole request gets 1 s more. */
  readonly headersTimeoutMs?: number;
  /** How often those timeouts are checked, in ms. */
  readonly timeoutCheckMs?: number;
  /** Connections open at once; beyond it new ones are closed at once. */
  readonly maxConnections?: number;
}

/** Connections one source may have open to the health listener. */
export const MAX_HEALTH_CONNECTIONS_PER_SOURCE = 16;

/** Starts the health listener; resolves once it listens. */
export function startHealthListener(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  host: string,
  port: number,
  limits: HealthLimits = {},
): Promise<Server> {
  const checking = { connectionsCheckingInterval: limits.timeoutCheckMs ?? 500 };
  const server = createServer(checking, (req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    if (req.method === "GET" && ALWAYS_ADMITTED.has(path)) {
      handle(req, res);
      return;
    }
    const body = JSON.stringify({
      error: { code: "not_found", message: "this port answers only /healthz and /readyz" },
    });
    res.writeHead(404, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
      connection: "close",
    });
    res.end(body);
  });
  server.on("clientError", answerClientError);
  const bySource = new Map<string, number>();
  server.on("connection", (socket) => {
    const source = sourceKey(normalizeAddress(socket.remoteAddress));
    const open = bySource.get(source) ?? 0;
    if (open >= MAX_HEALTH_CONNECTIONS_PER_SOURCE) {
      socket.destroy();
      return;
    }
    bySource.set(source, open + 1);
    socket.once("close", () => {
      const left = (bySource.get(source) ?? 1) - 1;
      if (left > 0) bySource.set(source, left);
      else bySource.delete(source);
    });
  });
  server.headersTimeout = limits.headersTimeoutMs ?? 2_000;
  server.requestTimeout = server.headersTimeout + 1_000;
  // Inactivity: the one limit on a connection that has not begun a request.
  server.timeout = server.headersTimeout;
  server.keepAliveTimeout = 1_000;
  server.maxConnections = limits.maxConnections ?? 256;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
