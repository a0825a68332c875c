// Known answers for Argon2id through @node-rs/argon2, the binding the owner CLI uses
// (SECURITY-TESTS #9).
//
// RFC 9106 §5.3 is not reproducible here: its vector sets associated data (12 bytes of 0x04)
// as well as a secret, and @node-rs/argon2's Options have `secret` but no associated-data field.
// So these are the reference implementation's own Argon2id cases (phc-winner-argon2 src/test.c,
// version 0x13), which use neither; packages/core/test/vectors/README.md says the same.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import type { Algorithm, Options, Version } from "@node-rs/argon2";
import { hash, hashRaw, verify } from "@node-rs/argon2";

interface Argon2Vectors {
  readonly source: string;
  readonly cases: readonly {
    readonly section: string;
    readonly password: string;
    readonly salt: string;
    readonly timeCost: number;
    readonly memoryCostKiB: number;
    readonly parallelism: number;
    readonly hash: string;
    readonly encoded: string;
  }[];
}

// From packages/cli/dist/kat/ (the compiled location of this file) to core's vector directory.
const VECTOR_URL = new URL("../../../core/test/vectors/kat/argon2id.json", import.meta.url);
const vectors = JSON.parse(readFileSync(VECTOR_URL, "utf8")) as Argon2Vectors;

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "utf8"));

// index.d.ts declares Algorithm and Version as ambient const enums, which verbatimModuleSyntax
// cannot read, so their values are spelled out: Argon2id = 2, V0x13 = 1. The PHC-string test
// below checks them, since hash() writes "$argon2id$v=19$" only for exactly these two.
const ARGON2ID = 2 as Algorithm;
const V0X13 = 1 as Version;

function options(c: Argon2Vectors["cases"][number]): Options {
  return {
    algorithm: ARGON2ID,
    version: V0X13,
    timeCost: c.timeCost,
    memoryCost: c.memoryCostKiB,
    parallelism: c.parallelism,
    outputLen: 32,
    salt: utf8(c.salt),
  };
}

test("the Argon2id vectors are the reference implementation's, with one and two lanes", () => {
  assert.match(vectors.source, /phc-winner-argon2/);
  assert.equal(vectors.cases.length, 7);
  assert.deepEqual([...new Set(vectors.cases.map((c) => c.parallelism))].sort(), [1, 2]);
});

test("Argon2id (@node-rs/argon2 hashRaw) gives the phc-winner-argon2 test.c tags", async () => {
  for (const c of vectors.cases) {
    const tag = await hashRaw(utf8(c.password), options(c));
    assert.equal(tag.toString("hex"), c.hash, c.section);
  }
});

test("Argon2id (@node-rs/argon2 hash) gives the phc-winner-argon2 test.c PHC strings", async () => {
  for (const c of vectors.cases) {
    assert.equal(await hash(utf8(c.password), options(c)), c.encoded, c.section);
  }
});

test("Argon2id verify accepts the reference PHC strings and rejects another password", async () => {
  for (const c of vectors.cases) {
    assert.equal(await verify(c.encoded, utf8(c.password)), true, c.section);
    assert.equal(await verify(c.encoded, utf8(`${c.password}!`)), false, c.section);
  }
});
