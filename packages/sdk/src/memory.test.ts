/**
 * SECURITY-TESTS.md #20 ("Memory"), the SDK's part: after `vault.use()` settles, the value buffer
 * and the DEK are zeroed, and a heap snapshot of the SDK process holds no copy of the value.
 *
 * Honest scope. A V8 heap snapshot records strings and objects, but typed-array backing stores
 * only by size, never their bytes. So the snapshot search proves that no *string* copy of the
 * value (raw, hex or base64) survives the calls; that the *buffers* are wiped is what the first
 * test checks, by holding on to them and reading them after `use()` settles. Copies made inside
 * OpenSSL or the kernel are out of reach of both.
 *
 * The DEK is observed without touching product code: core's AES-GCM open and its HPKE open both
 * call `globalThis.crypto.subtle.decrypt`, and the DEK (HPKE-opened) and the plaintext
 * (AES-GCM-opened) are views over the very ArrayBuffers that call resolves with. The test wraps
 * that method for the duration of one call, keeps the buffers, and checks them afterwards.
 *
 * The canary is built as bytes and never becomes a JavaScript string in this process, except in
 * the control at the very end, which proves the search finds a string copy when there is one.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { equalBytes } from "@keyhole/core";
import { Vault } from "./index.js";
import { FakeServer, honestHandler } from "./test-support/fake-server.js";
import {
  makeAgent,
  makeOwner,
  makeSecretVersion,
  type TestAgent,
} from "./test-support/fixtures.js";
import {
  findNeedles,
  heapNeedles,
  hexAscii,
  type Needle,
  takeHeapSnapshot,
} from "./test-support/heap.js";

const NAME = "memory-canary";
const USES = 50;

let agent: TestAgent;
let server: FakeServer;
/** `canary-` and 32 random hex digits, as ASCII bytes. */
let value: Buffer;
/** A copy of the DEK, taken by the first test, so the heap search can look for it too. */
let dek: Buffer | undefined;

before(async () => {
  const owner = await makeOwner();
  agent = await makeAgent(owner);
  value = Buffer.concat([Buffer.from("canary-"), hexAscii(randomBytes(16))]);
  const secret = await makeSecretVersion(owner, { name: NAME, value, recipients: [agent] });
  server = await FakeServer.start(honestHandler({ agents: [agent], secrets: [secret] }));
});

after(async () => {
  await server.close();
});

function newVault(): Vault {
  return new Vault({ addr: server.url, token: agent.tokenText });
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}

/** Runs `call` with `subtle.decrypt` wrapped; returns each ArrayBuffer it resolved with, and a copy. */
async function recordDecrypts(
  call: () => Promise<unknown>,
): Promise<{ buffer: ArrayBuffer; copy: Buffer }[]> {
  const subtle = globalThis.crypto.subtle;
  const original = subtle.decrypt;
  const seen: { buffer: ArrayBuffer; copy: Buffer }[] = [];
  subtle.decrypt = async (...args: Parameters<typeof original>) => {
    const buffer = await original.apply(subtle, args);
    seen.push({ buffer, copy: Buffer.from(new Uint8Array(buffer)) });
    return buffer;
  };
  try {
    await call();
  } finally {
    // Drop the own property; the prototype's method shows through again.
    delete (subtle as { decrypt?: unknown }).decrypt;
  }
  assert.equal(subtle.decrypt, original);
  return seen;
}

test("after vault.use() settles, the value buffer and the DEK are all zero", async () => {
  const vault = newVault();
  let kept: Uint8Array | undefined;
  let matched = false;
  const decrypts = await recordDecrypts(() =>
    vault.use(NAME, (bytes) => {
      kept = bytes;
      matched = equalBytes(bytes, value);
    }),
  );
  vault.close();
  assert.ok(matched, "the callback was handed the value");
  assert.ok(kept !== undefined && kept.length === value.length);
  assert.ok(isZero(kept), "the value buffer is zeroed");

  // One HPKE open (the 32-byte DEK), then one AES-GCM open (the value), in that order.
  assert.equal(decrypts.length, 2, "one use() opens one wrap and one envelope");
  const [dekOpen, valueOpen] = decrypts;
  assert.ok(dekOpen !== undefined && valueOpen !== undefined);
  assert.equal(dekOpen.copy.length, 32, "the first decrypt yields the DEK");
  assert.ok(equalBytes(valueOpen.copy, value), "the second decrypt yields the value");
  assert.equal(kept.buffer, valueOpen.buffer, "use() hands out a view of the decrypted buffer");
  assert.ok(isZero(new Uint8Array(dekOpen.buffer)), "the DEK is zeroed");
  assert.ok(isZero(new Uint8Array(valueOpen.buffer)), "the decrypted value is zeroed");
  dek = dekOpen.copy;
});

test(`after ${USES} vault.use() calls a heap snapshot holds no string copy of the value or the DEK`, async () => {
  assert.ok(dek !== undefined, "the first test ran and recorded the DEK");
  const needles: Needle[] = [
    ...heapNeedles("value", value),
    // The DEK is binary: its raw bytes cannot appear verbatim in the snapshot's JSON text.
    ...heapNeedles("DEK", dek, { raw: false }),
  ];
  const vault = newVault();
  let sum = 0;
  for (let i = 0; i < USES; i++) {
    await vault.use(NAME, (bytes) => {
      sum += bytes.reduce((a, b) => a + b, 0);
    });
  }
  assert.ok(sum > 0, "the callbacks saw the value");
  assert.deepEqual(findNeedles(await takeHeapSnapshot(), needles), []);

  // Control: a string copy of the value, in each form searched, must be found by the same search.
  const keep = await vault.get(NAME);
  const forms = [
    keep,
    Buffer.from(keep).toString("hex"),
    Buffer.from(keep).toString("hex").toUpperCase(),
    Buffer.from(keep).toString("base64"),
    Buffer.from(keep).toString("base64url"),
  ];
  const found = findNeedles(await takeHeapSnapshot(), needles);
  assert.deepEqual(found, [
    "value (raw)",
    "value (hex)",
    "value (HEX)",
    "value (base64)",
    "value (base64url)",
  ]);
  assert.equal(forms.length, 5, "the control strings stay alive across the snapshot");
  vault.close();
});
