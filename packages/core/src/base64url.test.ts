import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { decodeBase64url, encodeBase64url, isKeyholeError, tryDecodeBase64url } from "./index.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

describe("base64url", () => {
  it("round-trips any byte string and matches node's unpadded base64url", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = encodeBase64url(bytes);
        assert.equal(text, Buffer.from(bytes).toString("base64url"));
        assert.deepEqual(tryDecodeBase64url(text), bytes);
      }),
      { numRuns: 500 },
    );
  });

  it("accepts only canonical text: whatever decodes re-encodes to the same string", () => {
    const junk = fc.constantFrom(...ALPHABET, "=", "+", "/", " ", "\n", ".", "é");
    fc.assert(
      fc.property(fc.string({ unit: junk, maxLength: 40 }), (text) => {
        const bytes = tryDecodeBase64url(text);
        if (bytes !== null) assert.equal(encodeBase64url(bytes), text);
      }),
      { numRuns: 2000 },
    );
  });

  it("decodes the boundary lengths: '' → 0 bytes, 'AA' → 1, 'AAA' → 2, 'AAAA' → 3", () => {
    assert.deepEqual(tryDecodeBase64url(""), new Uint8Array(0));
    assert.deepEqual(tryDecodeBase64url("AA"), Uint8Array.of(0));
    assert.deepEqual(tryDecodeBase64url("AAA"), Uint8Array.of(0, 0));
    assert.deepEqual(tryDecodeBase64url("AAAA"), Uint8Array.of(0, 0, 0));
    assert.deepEqual(tryDecodeBase64url("-_8"), Uint8Array.of(0xfb, 0xff));
  });

  it("rejects non-zero trailing bits ('AB', 'AAB'), so no two strings decode to the same bytes", () => {
    assert.equal(tryDecodeBase64url("AB"), null);
    assert.equal(tryDecodeBase64url("AAB"), null);
    for (let v = 1; v < 16; v++) assert.equal(tryDecodeBase64url(`A${ALPHABET[v]}`), null);
    for (let v = 1; v < 4; v++) assert.equal(tryDecodeBase64url(`AA${ALPHABET[v]}`), null);
    assert.deepEqual(tryDecodeBase64url("AQ"), Uint8Array.of(1));
  });

  it("rejects padding, the +/ alphabet, whitespace and other characters", () => {
    for (const text of [
      "AA==",
      "AAA=",
      "AAAA====",
      "A+A",
      "A/A",
      "+/+/",
      "AA AA",
      " AAAA",
      "AAAA\n",
      "AA\tA",
      "AA.A",
      "AAé",
      "AA\u0000A",
    ]) {
      assert.equal(tryDecodeBase64url(text), null, JSON.stringify(text));
    }
  });

  it("rejects lengths ≡ 1 mod 4, which no byte string encodes to", () => {
    for (const text of ["A", "AAAAA", "AAAAAAAAA"]) assert.equal(tryDecodeBase64url(text), null);
  });

  it("rejects a non-string without throwing", () => {
    assert.equal(tryDecodeBase64url(42 as unknown as string), null);
    assert.equal(tryDecodeBase64url(null as unknown as string), null);
  });

  it("decodeBase64url throws bad_request on bad text or a wrong expected length, without echoing", () => {
    const secretish = "c2VjcmV0LXZhbHVl+";
    for (const [text, length] of [
      [secretish, undefined],
      ["AAAA", 2],
      ["AAAA", 4],
    ] as const) {
      assert.throws(
        () => decodeBase64url(text, length),
        (error) =>
          isKeyholeError(error) && error.code === "bad_request" && !error.message.includes(text),
      );
    }
    assert.deepEqual(decodeBase64url("AAAA", 3), new Uint8Array(3));
  });
});
