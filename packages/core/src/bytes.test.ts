import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  concatBytes,
  decodeUtf8,
  equalBytes,
  isKeyholeError,
  lp,
  randomBytes,
  toHex,
  u32,
  u64,
  utf8,
  zeroize,
} from "./index.js";

describe("bytes", () => {
  it("LP prefixes the UTF-8 byte length as u32 big-endian", () => {
    assert.equal(toHex(lp("abc")), "00000003616263");
    assert.equal(toHex(lp("")), "00000000");
    assert.equal(toHex(lp("é")), "00000002c3a9");
    assert.equal(toHex(lp(Uint8Array.of(1, 2))), "000000020102");
  });

  it("LP keeps field boundaries: ('ab','c') and ('a','bc') encode differently", () => {
    assert.notDeepEqual(concatBytes(lp("ab"), lp("c")), concatBytes(lp("a"), lp("bc")));
  });

  it("u64 encodes 8 bytes big-endian up to 2^53 − 1", () => {
    assert.equal(toHex(u64(0)), "0000000000000000");
    assert.equal(toHex(u64(1)), "0000000000000001");
    assert.equal(toHex(u64(1_767_225_600_000)), "0000019b76daa800");
    assert.equal(toHex(u64(Number.MAX_SAFE_INTEGER)), "001fffffffffffff");
  });

  it("u64 throws RangeError on negatives, fractions, NaN, infinities and unsafe integers", () => {
    for (const n of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, -0.5]) {
      assert.throws(() => u64(n), RangeError, String(n));
    }
  });

  it("u32 encodes 0..2^32 − 1 and throws RangeError outside", () => {
    assert.equal(toHex(u32(0xffff_ffff)), "ffffffff");
    assert.equal(toHex(u32(258)), "00000102");
    for (const n of [-1, 2 ** 32, 0.5, Number.NaN]) assert.throws(() => u32(n), RangeError);
  });

  it("concatBytes joins in order into a fresh array", () => {
    const a = Uint8Array.of(1);
    const joined = concatBytes(a, new Uint8Array(0), Uint8Array.of(2, 3));
    assert.deepEqual(joined, Uint8Array.of(1, 2, 3));
    a[0] = 9;
    assert.equal(joined[0], 1);
  });

  it("equalBytes compares content and length", () => {
    assert.equal(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2)), true);
    assert.equal(equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 3)), false);
    assert.equal(equalBytes(Uint8Array.of(1), Uint8Array.of(1, 0)), false);
    assert.equal(equalBytes(new Uint8Array(0), new Uint8Array(0)), true);
  });

  it("zeroize overwrites every given buffer and skips undefined", () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4);
    zeroize(a, undefined, b);
    assert.deepEqual(a, new Uint8Array(3));
    assert.deepEqual(b, new Uint8Array(1));
  });

  it("utf8/decodeUtf8 round-trip, and invalid UTF-8 is bad_request", () => {
    assert.equal(decodeUtf8(utf8("café ✓")), "café ✓");
    assert.throws(
      () => decodeUtf8(Uint8Array.of(0xc3)),
      (error) => isKeyholeError(error) && error.code === "bad_request",
    );
  });

  it("randomBytes returns the requested length and differs between calls", () => {
    assert.equal(randomBytes(32).length, 32);
    assert.equal(randomBytes(0).length, 0);
    assert.notDeepEqual(randomBytes(16), randomBytes(16));
  });

  it("toHex is lower-case and zero-padded", () => {
    assert.equal(toHex(Uint8Array.of(0, 10, 255)), "000aff");
  });
});
