// Slow and greedy clients (issue 4, Reliability): a client that trickles its headers is cut off
// by the headers timeout with a coded 408, not held forever; connections beyond the cap are
// closed at once and service resumes when they go. Timeouts and the cap are shrunk for the test
// (production: 15 s headers, 30 s request, checked every 2 s, 1024 connections). Oversized bodies: app.test.ts.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call } from "./test-support/http.js";

let server: TestServer;
let port: number;
before(async () => {
  server = await startTestServer({
    internals: {
      headersTimeoutMs: 800,
      requestTimeoutMs: 1_500,
      timeoutCheckMs: 200,
      maxConnections: 4,
    },
  });
  port = Number(new URL(server.url).port);
});
after(() => server.close());

/** A raw connection that collects what the server sends and notices when it closes. */
async function connect(): Promise<{
  socket: net.Socket;
  received: () => string;
  closed: Promise<void>;
}> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  let text = "";
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { socket, received: () => text, closed };
}

test("a client trickling its headers is cut off with a coded 408", async () => {
  const slow = await connect();
  slow.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  const started = Date.now();
  const trickle = setInterval(() => slow.socket.write("X-Slow: 1\r\n"), 100);
  try {
    await Promise.race([slow.closed, sleep(10_000).then(() => assert.fail("never cut off"))]);
  } finally {
    clearInterval(trickle);
  }
  assert.ok(Date.now() - started < 5_000);
  assert.match(slow.received(), /^HTTP\/1\.1 408 /);
  assert.match(slow.received(), /"code":"bad_request"/);
});

test("connections beyond the cap are closed at once; service resumes when they go", async () => {
  const held = [];
  for (let i = 0; i < 4; i++) held.push(await connect());
  const extra = await connect();
  await Promise.race([extra.closed, sleep(5_000).then(() => assert.fail("not closed"))]);
  for (const c of held) c.socket.destroy();
  await sleep(100);
  assert.equal((await call(server.url, { method: "GET", path: "/healthz" })).status, 200);
});
