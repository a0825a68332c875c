import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ERROR_STATUS, isWireErrorCode, type KeyholeErrorCode, utf8 } from "@keyhole/core";
import { errorFromResponse, networkError } from "./errors.js";

function body(code: string, message = "whatever"): Uint8Array {
  return utf8(JSON.stringify({ error: { code, message } }));
}

describe("errorFromResponse", () => {
  test("every wire code with its own status maps to itself", () => {
    for (const code of Object.keys(ERROR_STATUS) as KeyholeErrorCode[]) {
      if (!isWireErrorCode(code)) continue;
      const error = errorFromResponse(ERROR_STATUS[code], body(code), null);
      assert.equal(error.code, code);
      assert.match(error.message, new RegExp(`HTTP ${ERROR_STATUS[code]}`));
    }
  });

  test("the server's message is never copied (it could echo a header)", () => {
    const error = errorFromResponse(
      401,
      body("unauthenticated", "Keyhole AAAA.BBBB kh1_leak"),
      null,
    );
    assert.equal(error.code, "unauthenticated");
    assert.ok(!error.message.includes("kh1_leak"));
    assert.ok(!error.message.includes("AAAA.BBBB"));
  });

  test("an unknown code is untrusted_server", () => {
    assert.equal(errorFromResponse(400, body("teapot"), null).code, "untrusted_server");
  });

  test("a client-side code from the server is untrusted_server", () => {
    assert.equal(errorFromResponse(500, body("decrypt_failed"), null).code, "untrusted_server");
    assert.equal(errorFromResponse(500, body("rollback_detected"), null).code, "untrusted_server");
  });

  test("a code whose status disagrees with the HTTP status is untrusted_server", () => {
    assert.equal(errorFromResponse(200, body("not_found"), null).code, "untrusted_server");
    assert.equal(errorFromResponse(500, body("not_found"), null).code, "untrusted_server");
  });

  test("a proxy's non-JSON 502/503/504 is unavailable; other non-JSON errors are untrusted_server", () => {
    for (const status of [502, 503, 504]) {
      assert.equal(
        errorFromResponse(status, utf8("<html>bad gateway</html>"), null).code,
        "unavailable",
      );
    }
    assert.equal(errorFromResponse(401, utf8("nope"), null).code, "untrusted_server");
    assert.equal(errorFromResponse(302, new Uint8Array(0), null).code, "untrusted_server");
    assert.equal(
      errorFromResponse(404, utf8(JSON.stringify({ error: "not_found" })), null).code,
      "untrusted_server",
    );
  });

  test("rate_limited carries retry-after seconds; a bad or absurd retry-after is dropped", () => {
    assert.equal(errorFromResponse(429, body("rate_limited"), "30").retryAfterSeconds, 30);
    assert.equal(errorFromResponse(429, body("rate_limited"), "soon").retryAfterSeconds, undefined);
    assert.equal(
      errorFromResponse(429, body("rate_limited"), "99999999").retryAfterSeconds,
      undefined,
    );
    assert.equal(errorFromResponse(429, body("rate_limited"), null).retryAfterSeconds, undefined);
    assert.equal(errorFromResponse(503, body("unavailable"), "1").retryAfterSeconds, 1);
    assert.equal(errorFromResponse(503, body("storage_unavailable"), "5").retryAfterSeconds, 5);
    assert.equal(errorFromResponse(409, body("conflict"), "5").retryAfterSeconds, undefined);
  });
});

describe("networkError", () => {
  test("keeps an errno code and drops any other text", () => {
    assert.match(networkError("http://127.0.0.1:1", "ECONNREFUSED").message, /ECONNREFUSED/);
    const error = networkError("http://127.0.0.1:1", "connect failed kh1_leak");
    assert.equal(error.code, "network_error");
    assert.ok(!error.message.includes("kh1_leak"));
  });
});
