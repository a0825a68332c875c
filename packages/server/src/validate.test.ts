import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isKeyholeError, newId } from "@keyhole/core";
import fc from "fast-check";
import {
  array,
  b64u,
  checkBody,
  checkNoBody,
  hosts,
  id,
  int,
  name,
  nullable,
  object,
  str,
} from "./validate.js";

function badRequest(fn: () => unknown, path?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isKeyholeError(error) && error.code === "bad_request");
    if (path) assert.match(error.message, path);
    return true;
  });
}

describe("validate", () => {
  const shape = object({
    n: int(1, 10),
    s: str(5),
    b: b64u(2),
    maybe: nullable(int()),
    list: array(name, 2),
  });
  const good = { n: 3, s: "abc", b: "AAE", maybe: null, list: ["a-b"] };

  it("returns typed values for a valid object, decoding base64url", () => {
    assert.deepEqual(shape(good, "body"), { ...good, b: new Uint8Array([0, 1]) });
  });

  it("rejects unknown and missing fields, naming the path but not the key", () => {
    badRequest(() => shape({ ...good, secretish: 1 }, "body"), /^body: unknown field$/);
    const { s: _s, ...missing } = good;
    badRequest(() => shape(missing, "body"), /^body\.s: missing$/);
  });

  it("rejects wrong types, out-of-range and unsafe integers", () => {
    for (const n of [0, 11, 1.5, "3", null, Number.MAX_SAFE_INTEGER + 2, Number.NaN]) {
      badRequest(() => shape({ ...good, n }, "body"), /^body\.n: /);
    }
    badRequest(() => shape({ ...good, s: "toolong" }, "body"), /^body\.s: too long$/);
    badRequest(() => shape([good], "body"), /expected an object/);
    badRequest(() => shape(null, "body"), /expected an object/);
  });

  it("rejects non-canonical base64url and wrong lengths", () => {
    for (const b of ["AAE=", "AA+", "AA/", "AAF", "AA", "AAEC", " AAE", 7]) {
      badRequest(() => shape({ ...good, b }, "body"), /^body\.b: /);
    }
  });

  it("checks names, ids and canonical host lists", () => {
    assert.equal(name("db.prod_key-1", "n"), "db.prod_key-1");
    for (const n of ["", "-x", "a b", "x".repeat(129), "é"]) badRequest(() => name(n, "n"));
    const agentId = newId("agent");
    assert.equal(id("agent")(agentId, "i"), agentId);
    badRequest(() => id("secret")(agentId, "i"));
    assert.deepEqual(hosts(["a.example", "b.example:443"], "h"), ["a.example", "b.example:443"]);
    for (const h of [
      ["b.example", "a.example"],
      ["A.example"],
      ["a.example", "a.example"],
      ["bad host"],
      "a",
    ]) {
      badRequest(() => hosts(h, "h"));
    }
  });

  it("bounds arrays and names the failing index", () => {
    badRequest(() => shape({ ...good, list: ["a", "b", "c"] }, "body"), /too many items/);
    badRequest(() => shape({ ...good, list: ["a", "-"] }, "body"), /^body\.list\[1\]: /);
  });

  it("treats an empty body as missing, and {} as no body", () => {
    badRequest(() => checkBody(undefined, shape), /^body: missing$/);
    checkNoBody(undefined);
    checkNoBody({});
    badRequest(() => checkNoBody({ a: 1 }));
    badRequest(() => checkNoBody([]));
  });

  it("never throws anything but bad_request on arbitrary input (fuzz)", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          shape(value, "body");
        } catch (error) {
          assert.ok(isKeyholeError(error) && error.code === "bad_request");
        }
      }),
      { numRuns: 500 },
    );
  });
});
