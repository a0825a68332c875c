// The one end-to-end test with the real Argon2id cost (m=64 MiB, t=3, p=1): the key file is
// written with it and every later command opens it.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type E2eContext, e2eWithServer, type ServerProcess, stopE2e } from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;

before(async () => {
  ({ ctx, server } = await e2eWithServer());
  // The owner's own runs use the real Argon2 parameters (the server never runs Argon2).
  ctx.env.KEYHOLE_TEST_ARGON2_FAST = undefined;
});
after(() => stopE2e(ctx, server));

test("with the real Argon2id parameters the owner key is written and opened", async () => {
  const init = await ctx.keyhole(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  assert.equal(init.code, 0, init.stderr);
  const file = JSON.parse(
    await readFile(join(ctx.env.KEYHOLE_HOME as string, "owner.key"), "utf8"),
  ) as Record<string, unknown>;
  assert.deepEqual([file.kdf, file.m, file.t, file.p], ["argon2id", 65536, 3, 1]);
  const set = await ctx.keyhole(["secret", "set", "k"], { input: "v" });
  assert.equal(set.code, 0, set.stderr);
  const get = await ctx.keyhole(["secret", "get", "k"]);
  assert.equal(get.stdout, "v");
  const wrong = await ctx.keyhole(["secret", "get", "k"], {
    env: { KEYHOLE_PASSPHRASE: "not the passphrase" },
  });
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stderr, "keyhole: wrong passphrase or damaged key file\n");
});
