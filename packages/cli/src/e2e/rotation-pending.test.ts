// `agent rotate --token-file PATH` against a hostile or busy PATH.pending (found by review):
// whoever holds a leaked token and can write next to its file must not be able to turn the
// rotate meant to kill it into a no-op, and two rotates into one PATH must not leave it without
// a working token. The kill-at-every-step cases are in rotation-crash.test.ts.
import assert from "node:assert/strict";
import { copyFile, lstat, readFile, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Vault } from "@keyhole/sdk";
import { type E2eContext, e2eWithServer, type ServerProcess, stopE2e } from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;

before(async () => {
  ({ ctx, server } = await e2eWithServer({ init: true }));
  await ctx.ok(["secret", "set", "alpha"], "alpha value\n");
});
after(() => stopE2e(ctx, server));

async function works(token: string): Promise<boolean> {
  const vault = new Vault({ addr: server.url, token });
  try {
    return (await vault.get("alpha")) === "alpha value";
  } catch {
    return false;
  } finally {
    vault.close();
  }
}

async function created(name: string): Promise<{ path: string; token: string }> {
  const path = join(ctx.dir, `${name}.token`);
  await ctx.ok(["agent", "create", name, "--grant", "alpha", "--token-file", path]);
  return { path, token: (await readFile(path, "utf8")).trim() };
}

test("a copy of the current token planted as PATH.pending is refused, not taken as done", async () => {
  const { path, token } = await created("planted");
  await copyFile(path, `${path}.pending`);
  const run = await ctx.keyhole(["agent", "rotate", "planted", "--token-file", path]);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /not written by an interrupted rotate of agent 'planted'/);
  assert.doesNotMatch(run.stderr, /old token is dead|run .* again to finish/i);
  // Nothing happened, and the owner was told; moving the file away lets the rotate kill it.
  assert.equal(await works(token), true);
  await rm(`${path}.pending`);
  await ctx.ok(["agent", "rotate", "planted", "--token-file", path]);
  assert.equal(await works(token), false);
  assert.equal(await works((await readFile(path, "utf8")).trim()), true);
});

test("a symbolic link as PATH.pending is refused and PATH is left as it was", async () => {
  const { path, token } = await created("linked");
  await symlink(path, `${path}.pending`);
  const run = await ctx.keyhole(["agent", "rotate", "linked", "--token-file", path]);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /is a symbolic link/);
  assert.equal((await lstat(path)).isFile(), true);
  assert.equal((await readFile(path, "utf8")).trim(), token);
  assert.equal(await works(token), true);
});

test("two rotates into one PATH take turns: both succeed and PATH holds the one working token", async () => {
  for (let round = 0; round < 3; round++) {
    const name = `racer${round}`;
    const { path, token: old } = await created(name);
    const args = ["agent", "rotate", name, "--token-file", path];
    const runs = await Promise.all([ctx.keyhole(args), ctx.keyhole(args)]);
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    assert.equal(await works(old), false);
    assert.equal(await works((await readFile(path, "utf8")).trim()), true);
    await assert.rejects(lstat(`${path}.pending`));
    await assert.rejects(lstat(`${path}.lock`));
  }
});
