#!/usr/bin/env node
// The floor of a proxy hop on this machine: node:http in, keep-alive node:http out, the body piped
// through, nothing else (no capability check, no vault, no redaction, no log). The broker's added
// latency is read against this as well as against the direct call.
//
// Usage: node bench/bare-proxy.mjs UPSTREAM_PORT; prints `listening PORT` on stdout.
import http from "node:http";

const upstreamPort = Number(process.argv[2]);
const agent = new http.Agent({ keepAlive: true });

const server = http.createServer((req, res) => {
  const outbound = http.request({
    host: "127.0.0.1",
    port: upstreamPort,
    method: req.method,
    path: req.url,
    headers: { ...req.headers, host: `127.0.0.1:${upstreamPort}` },
    agent,
  });
  outbound.on("error", () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  outbound.on("response", (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  req.pipe(outbound);
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  agent.destroy();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
