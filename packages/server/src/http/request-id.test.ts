import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newRequestId } from "./request-id.js";

describe("request ids", () => {
  it("are 12 random bytes in base64url, unique across pool refills", () => {
    const ids = Array.from({ length: 5000 }, () => newRequestId());
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{16}$/);
    assert.equal(new Set(ids).size, ids.length);
  });
});
