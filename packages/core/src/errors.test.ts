import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ERROR_STATUS,
  isKeyholeError,
  isKeyholeErrorCode,
  isWireErrorCode,
  KeyholeError,
  type KeyholeErrorCode,
} from "./index.js";

// docs/api.md "Errors": the codes an HTTP answer may carry, and their statuses.
const WIRE_TABLE: Record<string, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  not_initialized: 409,
  already_initialized: 409,
  internal: 500,
  unavailable: 503,
  storage_unavailable: 503,
};

const ALL_CODES = Object.keys(ERROR_STATUS) as KeyholeErrorCode[];

describe("errors", () => {
  it("the wire codes and statuses are exactly the table in docs/api.md", () => {
    const wire = Object.fromEntries(
      Object.entries(ERROR_STATUS).filter(([, status]) => status !== 0),
    );
    assert.deepEqual(wire, WIRE_TABLE);
  });

  it("a wire code's .status is its HTTP status", () => {
    for (const code of ALL_CODES.filter((c) => ERROR_STATUS[c] !== 0)) {
      assert.equal(new KeyholeError(code).status, WIRE_TABLE[code]);
    }
  });

  it("a client-side code maps to 500 through .status, so it can never pass as a 4xx", () => {
    const clientSide = ALL_CODES.filter((c) => ERROR_STATUS[c] === 0);
    assert.ok(clientSide.includes("decrypt_failed") && clientSide.includes("invalid_token"));
    for (const code of clientSide) {
      assert.equal(new KeyholeError(code).status, 500);
      assert.equal(isWireErrorCode(code), false);
    }
  });

  it("every code has a one-line default message", () => {
    for (const code of ALL_CODES) {
      const { message } = new KeyholeError(code);
      assert.ok(message.length > 0 && !message.includes("\n"), code);
    }
  });

  it("is an Error with name KeyholeError, its code, and an optional retry-after", () => {
    const error = new KeyholeError("rate_limited", undefined, { retryAfterSeconds: 7 });
    assert.ok(error instanceof Error);
    assert.equal(error.name, "KeyholeError");
    assert.equal(error.code, "rate_limited");
    assert.equal(error.retryAfterSeconds, 7);
    assert.equal(new KeyholeError("not_found", "no such secret").message, "no such secret");
    assert.equal(new KeyholeError("not_found").retryAfterSeconds, undefined);
  });

  it("isKeyholeError recognises an error from another copy of the package by its brand", () => {
    const brand = Symbol.for("keyhole.error");
    class OtherCopyError extends Error {
      readonly code = "not_found";
      readonly [brand] = true;
    }
    assert.equal(isKeyholeError(new OtherCopyError()), true);
    assert.equal(isKeyholeError({ [brand]: true, code: "forbidden" }), true);
    assert.equal(isKeyholeError(new KeyholeError("internal")), true);
  });

  it("isKeyholeError rejects look-alikes without the exact brand", () => {
    const brand = Symbol.for("keyhole.error");
    for (const value of [
      new Error("x"),
      { code: "not_found", name: "KeyholeError" },
      { [brand]: "true" },
      { [Symbol("keyhole.error")]: true },
      null,
      undefined,
      "KeyholeError",
      42,
    ]) {
      assert.equal(isKeyholeError(value), false);
    }
  });

  it("isKeyholeErrorCode accepts only table keys, not inherited names", () => {
    assert.equal(isKeyholeErrorCode("decrypt_failed"), true);
    for (const value of ["toString", "__proto__", "constructor", "NOT_FOUND", "", 404, null]) {
      assert.equal(isKeyholeErrorCode(value), false, String(value));
    }
  });

  it("isWireErrorCode accepts exactly the codes with an HTTP status", () => {
    for (const code of ALL_CODES) assert.equal(isWireErrorCode(code), code in WIRE_TABLE, code);
    assert.equal(isWireErrorCode("teapot"), false);
  });
});
