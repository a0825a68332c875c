import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Logger } from "./log.js";

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
