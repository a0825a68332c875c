import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
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

  it("stops with the server", async () => {
    const other = await startTestServer({ healthPort: 0 });
    const url = other.server.healthUrl ?? "";
    await other.close();
    await assert.rejects(call(url, { method: "GET", path: "/healthz" }));
  });
});
