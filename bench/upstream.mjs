#!/usr/bin/env node
// The broker benchmark's upstream: a plain node:http server on 127.0.0.1 port 0 standing in for
// an API provider. It checks the credential like a real provider would (401 otherwise), so a
// benchmark run with a wrong or missing injection shows up as errors, not as fast answers.
//
//   GET /plain    a small JSON body
//   GET /stream   server-sent events: EVENTS events, GAP_MS apart (the first one at once)
//
// Usage: UPSTREAM_SECRET=... node bench/upstream.mjs [EVENTS=20] [GAP_MS=1]; prints
// `listening PORT` on stdout. The secret comes from the environment, never argv (which every
// user of the machine can read).
import http from "node:http";

const secret = process.env.UPSTREAM_SECRET;
const [eventsText = "20", gapText = "1"] = process.argv.slice(2);
if (!secret) {
  process.stderr.write("usage: UPSTREAM_SECRET=... upstream.mjs [EVENTS] [GAP_MS]\n");
  process.exit(2);
}
const expected = `Bearer ${secret}`;
const events = Number(eventsText);
const gapMs = Number(gapText);
const plainBody = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
});

function stream(res) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let sent = 0;
  const next = () => {
    if (res.destroyed) return;
    res.write(`data: {"index":${sent},"delta":"token ${sent}"}\n\n`);
    sent++;
    if (sent < events) setTimeout(next, gapMs);
    else res.end("data: [DONE]\n\n");
  };
  next();
}

const server = http.createServer((req, res) => {
  req.resume();
  if (req.headers.authorization !== expected) {
    res.writeHead(401, { "content-type": "application/json" });
    res.end('{"error":"bad credential"}');
    return;
  }
  const path = req.url.split("?")[0];
  if (path === "/plain") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(plainBody);
  } else if (path === "/stream") {
    stream(res);
  } else {
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"error":"not found"}');
  }
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
