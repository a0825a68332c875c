// `keyhole server` on an initialised vault whose revoked-tokens file was lost: it refuses to
// start (a restored database would otherwise revive later revocations) and names the flag that
// accepts re-creating the file from the database.
import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  BIN,
  cleanEnv,
  type E2eContext,
  e2eContext,
  runProcess,
  startKeyhole,
  startServerProcess,
} from "./harness.js";

let ctx: E2eContext;
let dataDir: string;

before(async () => {
  ctx = await e2eContext();
  dataDir = join(ctx.dir, "data");
  const server = await startServerProcess(dataDir, cleanEnv(ctx.dir));
  ctx.env.KEYHOLE_ADDR = server.url;
  const init = await ctx.keyhole(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  assert.equal(init.code, 0, init.stderr);
  const create = await ctx.keyhole(["agent", "create", "bot", "--token-file", join(ctx.dir, "t")]);
  assert.equal(create.code, 0, create.stderr);
  assert.equal((await ctx.keyhole(["agent", "revoke", "bot"])).code, 0);
  await server.process.stop("SIGTERM");
});

after(() => ctx.cleanup());

test("a lost revoked-tokens file stops the server; --allow-missing-revocations re-creates it", async () => {
  const file = join(dataDir, "revoked-tokens");
  const before = await readFile(file, "utf8");
  assert.match(before, /^[0-9a-f]{32}\n$/, "the revoke was recorded");
  await rm(file);

  const refused = await runProcess(
    process.execPath,
    [BIN, "server", "--data-dir", dataDir, "--port", "0"],
    { env: cleanEnv(ctx.dir), timeoutMs: 15_000 },
  );
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /revoked-tokens/);
  assert.match(refused.stderr, /--allow-missing-revocations/);
  await assert.rejects(readFile(file), "nothing was created by the refused start");

  const live = startKeyhole(
    ["server", "--data-dir", dataDir, "--port", "0", "--allow-missing-revocations"],
    cleanEnv(ctx.dir),
  );
  await live.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
  await live.stop("SIGTERM");
  assert.equal(await readFile(file, "utf8"), before, "re-created with the ids the database knows");
});
