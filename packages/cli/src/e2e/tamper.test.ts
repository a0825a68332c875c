// The owner CLI against a server whose SQLite file was tampered with directly:
// SECURITY-TESTS #8 (owner side: a swapped agent key gets nothing wrapped) and #18 (an edited
// audit entry is found by `keyhole audit verify`, which names its seq).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { deriveRecipientKeyPair, randomBytes } from "@keyhole/core";
import Database from "better-sqlite3";
import { type E2eContext, e2eWithServer, type ServerProcess, stopE2e } from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;
let db: Database.Database;

before(async () => {
  ({ ctx, server } = await e2eWithServer({ init: true }));
  for (const [args, input] of [
    [["secret", "set", "api-key"], "value"],
    [["agent", "create", "bot", "--token-file", join(ctx.dir, "bot.token")], undefined],
    [["agent", "create", "good", "--token-file", join(ctx.dir, "good.token")], undefined],
  ] as const) {
    const run = await ctx.keyhole([...args], input === undefined ? {} : { input });
    assert.equal(run.code, 0, run.stderr);
  }
  db = new Database(join(server.dataDir, "keyhole.db"));
  db.pragma("busy_timeout = 5000");
});
after(async () => {
  db?.close();
  await stopE2e(ctx, server);
});

function grantRows(agent: string): number {
  const row = db
    .prepare(
      "SELECT count(*) AS n FROM grants g JOIN agents a ON a.id = g.agent_id WHERE a.name = ?",
    )
    .get(agent) as { n: number };
  return row.n;
}

function auditActions(): string[] {
  return (db.prepare("SELECT action FROM audit ORDER BY seq").all() as { action: string }[]).map(
    (r) => r.action,
  );
}

test("an agent key swapped in the database: grant add exits 1 and no wrap is uploaded", async () => {
  const attacker = await deriveRecipientKeyPair(randomBytes(32));
  db.prepare("UPDATE agents SET enc_pk = ? WHERE name = 'bot'").run(
    Buffer.from(attacker.publicKey),
  );
  const writesBefore = auditActions().filter((a) => a === "grant.add").length;
  const run = await ctx.keyhole(["grant", "add", "bot", "api-key"]);
  assert.equal(run.code, 1);
  assert.equal(
    run.stderr,
    "keyhole: the server's key for agent 'bot' is not signed by this owner; nothing was wrapped\n",
  );
  assert.equal(grantRows("bot"), 0, "no wrap for the swapped key");
  assert.equal(
    auditActions().filter((a) => a === "grant.add").length,
    writesBefore,
    "no upload reached the server",
  );
  const show = await ctx.keyhole(["agent", "show", "bot"]);
  assert.equal(show.code, 1);
  assert.match(show.stdout, /key:\s+NOT SIGNED BY THIS OWNER/);
});

test("the untampered agent next to it is still granted normally", async () => {
  const run = await ctx.keyhole(["grant", "add", "good", "api-key"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(grantRows("good"), 1);
});

test("a swapped grantee key also stops secret set before anything is written", async () => {
  const good = db.prepare("SELECT enc_pk FROM agents WHERE name = 'good'").get() as {
    enc_pk: Buffer;
  };
  const attacker = await deriveRecipientKeyPair(randomBytes(32));
  db.prepare("UPDATE agents SET enc_pk = ? WHERE name = 'good'").run(
    Buffer.from(attacker.publicKey),
  );
  const versions = () =>
    (db.prepare("SELECT count(*) AS n FROM secret_versions").get() as { n: number }).n;
  const before = versions();
  const run = await ctx.keyhole(["secret", "set", "api-key"], { input: "new value" });
  assert.equal(run.code, 1);
  assert.match(run.stderr, /agent 'good' is not signed by this owner/);
  assert.equal(versions(), before);
  db.prepare("UPDATE agents SET enc_pk = ? WHERE name = 'good'").run(good.enc_pk);
  const retry = await ctx.keyhole(["secret", "set", "api-key"], { input: "new value" });
  assert.equal(retry.code, 0, retry.stderr);
});

test("an audit entry edited in the database is found by audit verify, which names its seq", async () => {
  const pinned = await ctx.keyhole(["audit", "verify"]);
  assert.equal(pinned.code, 0, pinned.stderr);
  db.exec("DROP TRIGGER IF EXISTS audit_no_update");
  db.prepare("UPDATE audit SET detail = 'nothing to see' WHERE seq = 3").run();
  const run = await ctx.keyhole(["audit", "verify"]);
  assert.equal(run.code, 1);
  assert.equal(
    run.stderr,
    "keyhole: audit log verification failed: seq 3 does not match the hash chain (edited, removed or reordered)\n",
  );
});
