import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call } from "./test-support/http.js";

describe("the health listener (--health-port)", () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer({ healthPort: 0 });
  });
  after(() => t.close());

  it("answers /healthz and /readyz on its own port, like the main one", async () => {
    const url = t.server.healthUrl;
    assert.ok(url !== null && url !== t.url);
    const health = await call(url, { method: "GET", path: "/healthz" });
    assert.equal(health.status, 200);
    const ready = await call(url, { method: "GET", path: "/readyz" });
    const mainReady = await call(t.url, { method: "GET", path: "/readyz" });
    assert.deepEqual([ready.status, ready.json], [mainReady.status, mainReady.json]);
  });

  it("answers nothing else there: not the API, not another method", async () => {
    const url = t.server.healthUrl ?? "";
    for (const [method, path] of [
      ["GET", "/v1/info"],
      ["GET", "/v1/agent/secrets/db"],
      ["POST", "/healthz"],
      ["GET", "/metrics"],
      ["GET", "/healthz/../v1/info"],
    ] as const) {
      const res = await call(url, { method, path });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.deepEqual(Object.keys(res.json as object), ["error"]);
    }
    assert.equal((await call(t.url, { method: "GET", path: "/v1/info" })).status, 200);
  });

  /** Opens `count` connections from `from` that never send a byte. */
  async function idle(from: string, count: number): Promise<net.Socket[]> {
    const port = Number(new URL(t.server.healthUrl ?? "").port);
    const sockets = [];
    for (let i = 0; i < count; i++) {
      const socket = net.connect({ port, host: "127.0.0.1", localAddress: from });
      socket.on("error", () => {});
      sockets.push(socket);
    }
    await Promise.all(
      sockets.map(
        (s) => new Promise((resolve) => s.once("connect", resolve).once("close", resolve)),
      ),
    );
    return sockets;
  }

  /** Probes on a new connection each time, as the kubelet does, until one answers 200. */
  async function probeUntilHealthy(withinMs: number): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < withinMs) {
      const status = await call(t.server.healthUrl ?? "", {
        method: "GET",
        path: "/healthz",
        headers: { connection: "close" },
      }).then(
        (res) => res.status,
        () => 0,
      );
      if (status === 200) return Date.now() - started;
      await sleep(100);
    }
    return -1;
  }

  it("one host's idle connections, hundreds of them, do not lock the prober out", async () => {
    const sockets = await idle("127.0.0.2", 300);
    await sleep(200);
    try {
      const waited = await probeUntilHealthy(1_000);
      assert.ok(waited >= 0 && waited < 500, `probe answered after ${waited} ms`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it("idle connections from many hosts hold the connection cap for seconds, not 30", async () => {
    // 20 hosts × 16 connections: more than the 256 the listener keeps open.
    const hosts = Array.from({ length: 20 }, (_, i) => `127.0.1.${i + 1}`);
    const sockets = (await Promise.all(hosts.map((host) => idle(host, 16)))).flat();
    const opened = Date.now();
    await sleep(200);
    try {
      const blocked = await probeUntilHealthy(100);
      assert.equal(blocked, -1, "the cap is full: the prober is shut out for now");
      const waited = await probeUntilHealthy(5_000);
      const elapsed = Date.now() - opened;
      assert.ok(waited >= 0 && elapsed < 3_500, `probe answered after ${elapsed} ms`);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });

  it("stops with the server", async () => {
    const other = await startTestServer({ healthPort: 0 });
    const url = other.server.healthUrl ?? "";
    await other.close();
    await assert.rejects(call(url, { method: "GET", path: "/healthz" }));
  });
});
