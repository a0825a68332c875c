import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import fc from "fast-check";
import { crc32, utf8 } from "./index.js";

// zlib.crc32 exists from Node 20.15; older Node 20 skips the cross-check.
const nodeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

describe("crc32", () => {
  it('gives the IEEE check value 0xCBF43926 for "123456789"', () => {
    assert.equal(crc32(utf8("123456789")), 0xcbf43926);
  });

  it("gives 0 for no input and an unsigned value for all-ones input", () => {
    assert.equal(crc32(new Uint8Array(0)), 0);
    const value = crc32(new Uint8Array(64).fill(0xff));
    assert.ok(value >= 0 && value <= 0xffff_ffff && Number.isInteger(value));
  });

  it("agrees with node:zlib on random input", { skip: nodeCrc32 === undefined }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        assert.equal(crc32(bytes), nodeCrc32?.(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it("changes on every single-bit error of a 64-byte token body", () => {
    const body = new Uint8Array(64).map((_, i) => i * 7);
    const reference = crc32(body);
    for (let bit = 0; bit < body.length * 8; bit++) {
      const copy = Uint8Array.from(body);
      copy[bit >> 3] = (copy[bit >> 3] as number) ^ (0x80 >> (bit & 7));
      assert.notEqual(crc32(copy), reference);
    }
  });
});
