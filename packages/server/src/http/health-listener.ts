/**
 * `keyhole server --health-port`: a second listener that answers only `GET /healthz` and
 * `GET /readyz` (through the app, so readiness is the same), plain HTTP, on the server's host.
 *
 * Why: under a flood the main listener's accept queue is full, and Node accepts one connection
 * per event-loop turn per listener, so a probe that opens a new connection each time (as the
 * kubelet does) waits behind the flood and times out (bench/flood.mjs: about 20% of probes).
 * A listener of its own has a queue of its own: its probes are accepted on the next turn.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ALWAYS_ADMITTED } from "./in-flight.js";

/** Starts the health listener; resolves once it listens. */
export function startHealthListener(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((req, res) => {
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
  server.headersTimeout = 5_000;
  server.requestTimeout = 5_000;
  server.maxConnections = 64;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
