// Load (issue 4, Reliability): requests that send their headers and then hold back a declared
// body must not shed everyone else. One source holds at most its share of the in-flight slots,
// health checks hold none, and a body that has not arrived by its deadline is cut with a coded
// 408, freeing its slot. Bounds are shrunk here (production: 256 slots, 32 per source, 10 s
// body deadline); sources are told apart by X-Forwarded-For from a trusted 127.0.0.1.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call } from "./test-support/http.js";

const ATTACKER = "203.0.113.5";
const OTHER = "198.51.100.7";

/** A raw request that sends its headers, declaring a 10-byte body it never sends. */
async function stall(
  url: string,
  path: string,
  from: string,
): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  const socket = net.connect(Number(new URL(url).port), "127.0.0.1");
  await new Promise((resolve) => socket.once("connect", resolve));
  let text = "";
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const method = path === "/v1/init" ? "POST" : "GET";
  socket.write(
    `${method} ${path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ${from}\r\n` +
      "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n",
  );
  return { socket, received: () => text, closed };
}

/** A request with a (small, complete) body: counted against its source's share. */
function post(url: string, from: string): Promise<number> {
  return call(url, {
    method: "POST",
    path: "/v1/init",
    headers: { "x-forwarded-for": from, connection: "close" },
    body: {},
  }).then((res) => res.status);
}

function info(url: string, from: string): Promise<number> {
  return call(url, {
    method: "GET",
    path: "/v1/info",
    headers: { "x-forwarded-for": from, connection: "close" },
  }).then((res) => res.status);
}

describe("stalled bodies (default 10 s deadline)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      maxInFlight: 8,
      trustedProxies: ["127.0.0.1"],
      internals: { maxInFlightPerSource: 4 },
    });
  });
  after(() => server.close());

  test("stalled bodies from one source cannot shed another source's requests", async () => {
    const stalled = [];
    for (let i = 0; i < 10; i++) stalled.push(await stall(server.url, "/v1/init", ATTACKER));
    await sleep(200);
    const another = await stall(server.url, "/v1/init", ATTACKER);
    await sleep(100);
    assert.match(another.received(), /^HTTP\/1\.1 503 /, "the stalling source is past its share");
    assert.equal(await info(server.url, OTHER), 200, "another source is served");
    // Requests without a body cannot stall, and are not capped per source (a broker or a NAT
    // gateway is one source for many agents): the same source's reads are still served.
    assert.equal(await info(server.url, ATTACKER), 200, "a bodiless request from it is served");
    for (const s of [...stalled, another]) s.socket.destroy();
  });

  test("health checks with stalled bodies take no slot", async () => {
    const stalled = [];
    // From many sources, so no per-source share can be what keeps them out of the count.
    for (let i = 0; i < 12; i++) {
      stalled.push(await stall(server.url, i % 2 ? "/healthz" : "/readyz", `192.0.2.${i + 1}`));
    }
    await sleep(200);
    assert.equal(await info(server.url, OTHER), 200);
    assert.equal((await call(server.url, { method: "GET", path: "/healthz" })).status, 200);
    // They hold no memory either: a health path takes no body, so each was refused at once.
    for (const s of stalled) assert.match(s.received(), /^HTTP\/1\.1 413 /);
    for (const s of stalled) s.socket.destroy();
  });

  test("a health path refuses any body, whatever the method, without reading it", async () => {
    for (const method of ["GET", "POST", "PUT"]) {
      const res = await call(server.url, {
        method,
        path: "/healthz",
        body: { pad: "x".repeat(64) },
      });
      assert.equal(res.status, 413, method);
    }
    assert.equal((await call(server.url, { method: "GET", path: "/readyz" })).status, 200);
  });
});

describe("stalled bodies (deadline shrunk to 1 s)", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({
      maxInFlight: 8,
      trustedProxies: ["127.0.0.1"],
      internals: { maxInFlightPerSource: 4, bodyTimeoutMs: 1_000 },
    });
  });
  after(() => server.close());

  test("a stalled body is cut with a coded 408 after its deadline, and its slot is freed", async () => {
    const started = Date.now();
    const stalled = [];
    for (let i = 0; i < 4; i++) stalled.push(await stall(server.url, "/v1/init", ATTACKER));
    await sleep(200);
    assert.equal(await post(server.url, ATTACKER), 503, "its share is full");
    for (const s of stalled) {
      // Unref: a pending timer would keep the test process alive after the test.
      const limit = sleep(5_000, undefined, { ref: false }).then(() => assert.fail("never cut"));
      await Promise.race([s.closed, limit]);
      assert.match(s.received(), /^HTTP\/1\.1 408 /);
      assert.match(s.received(), /"code":"bad_request"/);
      assert.match(s.received(), /connection: close/i);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 4_000, `cut after ${elapsed} ms`);
    assert.notEqual(await post(server.url, ATTACKER), 503, "the slots are free again");
  });

  test("a body that arrives in time is read as usual", async () => {
    const res = await call(server.url, {
      method: "POST",
      path: "/v1/init",
      headers: { "x-forwarded-for": OTHER },
      body: {},
    });
    assert.ok(res.status >= 400 && res.status < 500 && res.status !== 408, `got ${res.status}`);
  });
});
