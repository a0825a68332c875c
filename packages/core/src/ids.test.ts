import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeBase64url, ID_PREFIX, type IdKind, isId, isValidName, newId } from "./index.js";

const KINDS = Object.keys(ID_PREFIX) as IdKind[];

describe("ids", () => {
  it("newId gives the kind's prefix and 22 characters of base64url (26 in all)", () => {
    for (const kind of KINDS) {
      const id = newId(kind);
      assert.equal(id.length, 26);
      assert.ok(id.startsWith(ID_PREFIX[kind]));
      assert.equal(isId(kind, id), true);
    }
    assert.notEqual(newId("secret"), newId("secret"));
  });

  it("isId rejects another kind's prefix", () => {
    assert.equal(isId("agent", newId("secret")), false);
    assert.equal(isId("vault", newId("agent")), false);
  });

  it("isId rejects 15 or 17 bytes, non-canonical base64url and non-strings", () => {
    const b = (n: number) => encodeBase64url(new Uint8Array(n).fill(7));
    assert.equal(isId("agent", `agt_${b(16)}`), true);
    assert.equal(isId("agent", `agt_${b(15)}`), false);
    assert.equal(isId("agent", `agt_${b(17)}`), false);
    // 16 bytes = 21 full characters + one carrying 2 bits and 4 zero bits: "AB" tail is not canonical.
    assert.equal(isId("agent", `agt_${"A".repeat(21)}B`), false);
    assert.equal(isId("agent", `agt_${"A".repeat(21)}Q`), true);
    assert.equal(isId("agent", `agt_${"A".repeat(21)}==`), false);
    assert.equal(isId("agent", `agt_${"+".repeat(22)}`), false);
    assert.equal(isId("agent", 42), false);
    assert.equal(isId("agent", "agt_"), false);
  });

  it("isValidName accepts 1–128 of A-Z a-z 0-9 . _ - starting with a letter or digit", () => {
    for (const name of ["a", "openai-api-key", "A.b_c-9", "9lives", "x".repeat(128)]) {
      assert.equal(isValidName(name), true, name);
    }
  });

  it("isValidName rejects empty, too long, a leading symbol, spaces, slashes, unicode, newlines", () => {
    for (const name of [
      "",
      "x".repeat(129),
      ".env",
      "-x",
      "_x",
      "a b",
      "a/b",
      "..",
      "ключ",
      "abc\n",
      "a\u0000",
      "a:b",
    ]) {
      assert.equal(isValidName(name), false, JSON.stringify(name));
    }
    assert.equal(isValidName(undefined), false);
    assert.equal(isValidName(7), false);
  });
});
