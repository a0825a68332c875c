import assert from "node:assert/strict";
import { test } from "node:test";
import type { SecretInfo } from "@keyhole/sdk";
import { parseRouteSpec } from "./routes.js";
import { createVaultSecretSource, type SecretReader } from "./vault-source.js";

const route = parseRouteSpec("openai");

/** A reader that behaves like the SDK: hands out bytes and zeroes them when the callback returns. */
function fakeReader(values: string[]): SecretReader & { reads: number; handedOut: Uint8Array[] } {
  const state = {
    reads: 0,
    handedOut: [] as Uint8Array[],
    async use<T>(name: string, fn: (value: Uint8Array, info: SecretInfo) => T | PromiseLike<T>) {
      const bytes = new TextEncoder().encode(values[Math.min(state.reads, values.length - 1)]);
      state.reads++;
      state.handedOut.push(bytes);
      const info: SecretInfo = { name, version: state.reads, notAfter: 0, allowedHosts: ["h"] };
      try {
        return await fn(bytes, info);
      } finally {
        bytes.fill(0);
      }
    },
  };
  return state;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

test("without a cache every call reads the vault and gets its own copy", async () => {
  const reader = fakeReader(["v1", "v2"]);
  const source = createVaultSecretSource(reader);
  const first = await source.get(route);
  assert.equal(text(first.value), "v1");
  assert.deepEqual(first.allowedHosts, ["h"]);
  assert.ok(
    reader.handedOut[0]?.every((b) => b === 0),
    "the SDK's own bytes are zeroed",
  );
  assert.equal(text((await source.get(route)).value), "v2", "a rotated value is used at once");
  assert.equal(reader.reads, 2);
});

test("with a cache the value is read once per TTL, each call gets a copy, close zeroes it", async () => {
  const reader = fakeReader(["v1", "v2"]);
  const source = createVaultSecretSource(reader, 60_000);
  const a = await source.get(route);
  a.value.fill(0); // what the proxy does when the call ends
  const b = await source.get(route);
  assert.equal(text(b.value), "v1");
  assert.equal(reader.reads, 1);
  source.close();
  assert.equal(text((await source.get(route)).value), "v2", "closed: the next call reads again");
  source.close();
});

test("a cached value expires after its TTL", async () => {
  const reader = fakeReader(["v1", "v2"]);
  const source = createVaultSecretSource(reader, 20);
  await source.get(route);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(text((await source.get(route)).value), "v2");
  source.close();
});

test("a failed read is not cached and the error passes through", async () => {
  let fail = true;
  const reader: SecretReader = {
    async use(name, fn) {
      if (fail) throw new Error("revoked");
      return fn(new TextEncoder().encode("ok"), {
        name,
        version: 1,
        notAfter: 0,
        allowedHosts: [],
      });
    },
  };
  const source = createVaultSecretSource(reader, 60_000);
  await assert.rejects(source.get(route), /revoked/);
  fail = false;
  assert.equal(text((await source.get(route)).value), "ok");
  source.close();
});
