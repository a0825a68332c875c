import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MAX_BODY_BYTES, MAX_GRANTS_BODY_BYTES } from "./http/body.js";
import type { TestServer } from "./test-support/harness.js";
import { call, type HttpResult } from "./test-support/http.js";
import { ownedServer } from "./test-support/owned-server.js";
import type { TestOwner } from "./test-support/owner.js";

/** An error answer has exactly `{error: {code, message}}` and no stack or internals. */
function assertCleanError(res: HttpResult, status: number, code: string): void {
  assert.equal(res.status, status, res.text);
  assert.deepEqual(Object.keys(res.json as object), ["error"]);
  const error = (res.json as { error: Record<string, unknown> }).error;
  assert.deepEqual(Object.keys(error).sort(), ["code", "message"]);
  assert.equal(error.code, code);
  assert.doesNotMatch(res.text, /\bat .*\.js:\d+|node:internal|SQLITE/);
}

describe("HTTP handling", () => {
  let t: TestServer;
  let owner: TestOwner;

  ownedServer((ready) => ({ t, owner } = ready), { secrets: ["db"] });

  it("answers 404 not_found for an unknown path, a wrong method and HEAD", async () => {
    assertCleanError(await call(t.url, { method: "GET", path: "/nope" }), 404, "not_found");
    assertCleanError(await call(t.url, { method: "DELETE", path: "/healthz" }), 404, "not_found");
    assertCleanError(
      await call(t.url, { method: "PATCH", path: "/v1/owner/secrets/db" }),
      404,
      "not_found",
    );
    assertCleanError(
      await call(t.url, { method: "GET", path: "/v1/owner/agents/" }),
      404,
      "not_found",
    );
    assertCleanError(
      await call(t.url, { method: "GET", path: "/v1/agent/self/" }),
      404,
      "not_found",
    );
    const head = await call(t.url, { method: "HEAD", path: "/healthz" });
    assert.equal(head.status, 404);
  });

  it("answers 400 for malformed percent-encoding anywhere in the path or query", async () => {
    assertCleanError(
      await call(t.url, { method: "GET", path: "/v1/%E0%A4%A" }),
      400,
      "bad_request",
    );
    assertCleanError(await owner.request("GET", "/v1/owner/secrets/%ZZ"), 400, "bad_request");
    assertCleanError(await owner.request("GET", "/v1/owner/audit?agent=%E0"), 400, "bad_request");
  });

  // Most routes take 256 KiB; the three that carry a grant per agent or per secret take 512 KiB
  // (1,000 re-wrapped grants). Each limit is checked at its edge, on a route of each kind.
  const limits = [
    { kind: "an ordinary route", method: "POST", path: "/v1/owner/grants", limit: MAX_BODY_BYTES },
    {
      kind: "a route carrying grants",
      method: "POST",
      path: "/v1/owner/agents",
      limit: MAX_GRANTS_BODY_BYTES,
    },
  ] as const;
  assert.equal(MAX_BODY_BYTES, 256 * 1024);
  assert.equal(MAX_GRANTS_BODY_BYTES, 512 * 1024);

  for (const { kind, method, path, limit } of limits) {
    it(`answers 413 on ${kind} for a declared length over its limit, without reading it`, async () => {
      const res = await owner.request(method, path, "x".repeat(limit + 1));
      assertCleanError(res, 413, "payload_too_large");
      assert.equal(res.headers.connection, "close");
    });

    it(`answers 413 on ${kind} for a chunked body that grows past its limit`, async () => {
      const res = await call(t.url, {
        method,
        path,
        body: `{"a":"${"y".repeat(limit + 1024)}"}`,
        chunked: true,
      });
      assertCleanError(res, 413, "payload_too_large");
    });

    it(`accepts a body of exactly the limit on ${kind} as far as size goes`, async () => {
      const body = `"${"z".repeat(limit - 2)}"`;
      const res = await owner.request(method, path, body);
      assertCleanError(res, 400, "bad_request");
    });
  }

  it("answers 413 for a PUT of a secret over 512 KiB", async () => {
    const res = await owner.request("PUT", "/v1/owner/secrets/big", "x".repeat(512 * 1024 + 1));
    assertCleanError(res, 413, "payload_too_large");
  });

  it("answers 400 for invalid JSON, invalid UTF-8 and a non-JSON content type", async () => {
    assertCleanError(await owner.request("POST", "/v1/owner/agents", "{"), 400, "bad_request");
    assertCleanError(
      await owner.request("POST", "/v1/owner/agents", new Uint8Array([0x22, 0xff, 0x22])),
      400,
      "bad_request",
    );
    assertCleanError(
      await owner.request("POST", "/v1/owner/agents", "{}", {
        headers: { "content-type": "text/plain" },
      }),
      400,
      "bad_request",
    );
  });

  it("never names an unknown field or echoes a value in an error message", async () => {
    const res = await owner.request("POST", "/v1/owner/grants", {
      "secret-looking-key": "canary-value-123",
    });
    assertCleanError(res, 400, "bad_request");
    assert.equal(res.text.includes("secret-looking-key"), false);
    assert.equal(res.text.includes("canary-value-123"), false);
  });

  it("answers 401 before parsing the body of an unauthenticated request", async () => {
    const res = await call(t.url, { method: "POST", path: "/v1/owner/agents", body: "{" });
    assertCleanError(res, 401, "unauthenticated");
  });

  it("never answers 5xx to random JSON on any body-taking route (fuzz)", async () => {
    const routes: [string, string][] = [
      ["POST", "/v1/owner/agents"],
      ["POST", "/v1/owner/agents/ci/rotate"],
      ["POST", "/v1/owner/agents/ci/revoke"],
      ["PUT", "/v1/owner/secrets/db"],
      ["POST", "/v1/owner/grants"],
      ["DELETE", "/v1/owner/secrets/none"],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.jsonValue(), async ([method, path], body) => {
        const res = await owner.request(method, path, JSON.stringify(body));
        assert.ok(res.status < 500, `${method} ${path} -> ${res.status}`);
        assert.ok([400, 404, 409].includes(res.status), `${method} ${path} -> ${res.status}`);
      }),
      { numRuns: 150 },
    );
  });

  it("never answers 5xx when one field of a valid body is replaced by random JSON (fuzz)", async () => {
    const agent = await owner.mintAgent("fuzzed");
    const valid = await owner.agentCreateBody(agent, ["db"]);
    const keys = Object.keys(valid);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...keys), fc.jsonValue(), async (key, value) => {
        const res = await owner.request("POST", "/v1/owner/agents", { ...valid, [key]: value });
        // A replacement can happen to be valid (expires_at: null): then 201, and 409 afterwards.
        assert.ok([201, 400, 404, 409].includes(res.status), `${key} -> ${res.status} ${res.text}`);
      }),
      { numRuns: 150 },
    );
  });

  it("never answers 5xx to random paths and init bodies (fuzz)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.webPath(), fc.jsonValue(), async (path, body) => {
        const res = await call(t.url, {
          method: "POST",
          path: path.startsWith("/") ? path : `/${path}`,
          body: JSON.stringify(body),
        });
        assert.ok(res.status < 500, `${path} -> ${res.status}`);
        const init = await call(t.url, {
          method: "POST",
          path: "/v1/init",
          body: JSON.stringify(body),
        });
        assert.ok(init.status < 500);
      }),
      { numRuns: 100 },
    );
  });

  it("logs one line per request, with the path but no query values and no headers", async () => {
    const before = t.logs.length;
    await owner.request("GET", "/v1/owner/audit?agent=query-value-canary");
    const lines = t.logs.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.path, "/v1/owner/audit");
    assert.equal(lines[0]?.route, "/v1/owner/audit");
    assert.equal(lines[0]?.status, 200);
    assert.equal(lines[0]?.actor, "owner");
    assert.equal(t.logs.slice(before).join("\n").includes("query-value-canary"), false);
    assert.equal(t.logs.join("\n").includes("Keyhole-Owner"), false);
  });
});
