import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Logger } from "./log.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call } from "./test-support/http.js";

describe("Logger", () => {
  const line = {
    requestId: "r",
    method: "GET",
    path: "/p",
    route: "/p",
    status: 200,
    durationMs: 1.234,
    actor: null,
  };

  it("writes request lines at info, 5xx lines from error up, nothing when silent", () => {
    const at = (level: "silent" | "error" | "info" | "debug") => {
      const lines: string[] = [];
      const logger = new Logger(level, (l) => lines.push(l));
      logger.request(line);
      logger.request({ ...line, status: 503 });
      return lines.map((l) => (JSON.parse(l) as { status: number }).status);
    };
    assert.deepEqual(at("silent"), []);
    assert.deepEqual(at("error"), [503]);
    assert.deepEqual(at("info"), [200, 503]);
    assert.deepEqual(at("debug"), [200, 503]);
  });

  it("logs an unexpected error by name and code only, never its message", () => {
    const lines: string[] = [];
    const logger = new Logger("debug", (l) => lines.push(l));
    const error = Object.assign(new TypeError("kh1_secret-in-message"), { code: "E_X" });
    logger.unexpected("oops", error, "r1");
    const parsed = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
    assert.equal(parsed.error, "TypeError");
    assert.equal(parsed.code, "E_X");
    assert.equal(parsed.request_id, "r1");
    assert.ok(Array.isArray(parsed.frames));
    assert.equal(lines[0]?.includes("kh1_secret-in-message"), false);
  });

  it("survives a throwing sink", () => {
    const logger = new Logger("info", () => {
      throw new Error("disk full");
    });
    logger.request(line);
  });
});

describe("request ids", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  const linesOf = (id: string) =>
    t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.request_id === id);

  it("puts the id of the x-request-id header in the request's log line", async () => {
    const res = await call(t.url, { method: "GET", path: "/v1/agent/secrets/x" });
    const id = String(res.headers["x-request-id"]);
    assert.match(id, /^[A-Za-z0-9_-]{16}$/);
    const lines = linesOf(id);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.msg, "request");
    assert.equal(lines[0]?.route, "/v1/agent/secrets/:name");
  });

  it("gives every request a fresh id and ignores the client's", async () => {
    const forged = 'abc","level":"error","msg":"forged';
    const ids = new Set<string>();
    for (const sent of ["client-chosen-id", forged]) {
      const res = await call(t.url, {
        method: "GET",
        path: "/healthz",
        headers: { "x-request-id": sent },
      });
      const id = String(res.headers["x-request-id"]);
      assert.notEqual(id, sent);
      assert.equal(linesOf(id).length, 1);
      ids.add(id);
    }
    assert.equal(ids.size, 2);
    const all = t.logs.join("\n");
    assert.equal(all.includes("client-chosen-id"), false);
    assert.equal(all.includes("forged"), false);
  });
});
