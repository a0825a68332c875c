// Backup and restore (issue 4, Reliability) through the real CLI and server processes: an online
// backup while the server runs; a restore refused while it runs; after a restore of a backup
// taken before a revoke, the revoked agent's token still does not work (revoked-tokens is not in
// the backup and not rolled back). Also: one server per data directory.
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Vault } from "@keyhole/sdk";
import {
  cleanEnv,
  type E2eContext,
  e2eContext,
  type ServerProcess,
  startKeyhole,
  startServerProcess,
} from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;
let dataDir: string;

before(async () => {
  ctx = await e2eContext();
  dataDir = join(ctx.dir, "data");
  server = await startServerProcess(dataDir, cleanEnv(ctx.dir));
  ctx.env.KEYHOLE_ADDR = server.url;
  await ctx.ok(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
});
after(async () => {
  await server?.process.stop("SIGTERM");
  await ctx.cleanup();
});

async function agentRead(tokenFile: string, name: string): Promise<string> {
  const vault = new Vault({ addr: server.url, tokenFile });
  try {
    return await vault.get(name);
  } catch (error) {
    return `error:${(error as { code?: string }).code ?? "?"}`;
  } finally {
    vault.close();
  }
}

test("a second server on the same data directory is refused while the first runs", async () => {
  const second = startKeyhole(
    ["server", "--data-dir", dataDir, "--port", "0", "--log-level", "error"],
    cleanEnv(ctx.dir),
  );
  const { code } = await new Promise<{ code: number | null }>((resolve) =>
    second.child.on("exit", (exitCode) => resolve({ code: exitCode })),
  );
  assert.equal(code, 1);
  assert.match(second.stderr(), /another keyhole server \(pid \d+\) uses the data directory/);
});

test("backup while running; restore refused while running; a restored database keeps revokes", async () => {
  await ctx.ok(["secret", "set", "db-password"], "before-backup");
  const tokenFile = join(ctx.dir, "bot.token");
  await ctx.ok(["agent", "create", "bot", "--grant", "db-password", "--token-file", tokenFile]);
  assert.equal(await agentRead(tokenFile, "db-password"), "before-backup");

  const backupFile = join(ctx.dir, "backup.db");
  const backup = await ctx.ok(["backup", "--data-dir", dataDir, backupFile]);
  assert.match(backup.stderr, /backed up/);
  assert.equal((await stat(backupFile)).mode & 0o777, 0o600);
  const again = await ctx.keyhole(["backup", "--data-dir", dataDir, backupFile]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists/);

  const busy = await ctx.keyhole(["restore", "--data-dir", dataDir, backupFile]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /stop the server first/);

  await ctx.ok(["agent", "revoke", "bot"]);
  assert.equal(await agentRead(tokenFile, "db-password"), "error:unauthenticated");
  assert.equal((await server.process.stop("SIGTERM")).code, 0);

  const restored = await ctx.ok(["restore", "--data-dir", dataDir, backupFile]);
  assert.match(restored.stderr, /kept as .*keyhole\.db\.before-restore-\d+/);
  const files = await readdir(dataDir);
  assert.ok(files.some((f) => f.startsWith("keyhole.db.before-restore-")));
  assert.ok(!files.includes("keyhole.db.restoring"));

  server = await startServerProcess(dataDir, cleanEnv(ctx.dir));
  // The restored database holds bot's live token; revoked-tokens keeps it out, and says so.
  await server.process.waitFor(/token is on the revoked list but live in the database/);
  assert.equal(await agentRead(tokenFile, "db-password"), "error:unauthenticated");
});

test("restore refuses a file that is not a Keyhole database", async () => {
  const bad = await ctx.keyhole(["restore", "--data-dir", join(ctx.dir, "other"), "/etc/hostname"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not a readable SQLite database|not a Keyhole database/);
});
