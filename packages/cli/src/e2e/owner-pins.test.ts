// Security review H2 and M3 end to end: the real executable against a real `keyhole server`
// whose SQLite file is tampered with directly, and the real SDK as the agent. A rotate after a
// grant expired keeps the active grants; a revoked agent put back as a grantee in the database
// (with its old wrap) gets nothing from the owner's next `secret set`; nor do limits the
// database changed.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Vault } from "@keyhole/sdk";
import Database from "better-sqlite3";
import { type E2eContext, e2eWithServer, type ServerProcess, stopE2e } from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;
let db: Database.Database;

before(async () => {
  ({ ctx, server } = await e2eWithServer({ init: true }));
  await ctx.ok(["secret", "set", "api-key"], "api value");
  await ctx.ok(["secret", "set", "db"], "db value");
  await ctx.ok(["agent", "create", "bot", "--grant", "api-key", "--token-file", token("bot")]);
  await ctx.ok(["agent", "create", "good", "--grant", "api-key", "--token-file", token("good")]);
  db = new Database(join(server.dataDir, "keyhole.db"));
  db.pragma("busy_timeout = 5000");
});
after(async () => {
  db?.close();
  await stopE2e(ctx, server);
});

function token(name: string): string {
  return join(ctx.dir, `${name}.token`);
}

async function sdkGet(tokenFile: string, name: string): Promise<string> {
  const vault = new Vault({ addr: server.url, tokenFile });
  try {
    return await vault.get(name);
  } catch (error) {
    return `error: ${(error as { code?: string }).code ?? "no code"}`;
  } finally {
    vault.close();
  }
}

function versions(secret: string): number {
  return (
    db
      .prepare(
        "SELECT count(*) AS n FROM secret_versions v JOIN secrets s ON s.id = v.secret_id WHERE s.name = ?",
      )
      .get(secret) as { n: number }
  ).n;
}

function agentId(name: string): string {
  return (
    db
      .prepare("SELECT id FROM agents WHERE name = ? ORDER BY revoked_at IS NULL DESC LIMIT 1")
      .get(name) as { id: string }
  ).id;
}

test("agent rotate after one of its grants expired succeeds; the new token reads the active ones", async () => {
  await ctx.ok(["grant", "add", "bot", "db", "--expires", "2s"]);
  assert.equal(await sdkGet(token("bot"), "db"), "db value");
  await sleep(2500);
  assert.equal(await sdkGet(token("bot"), "db"), "error: not_found", "the grant expired");
  const run = await ctx.ok(["agent", "rotate", "bot", "--token-file", token("bot-2")]);
  assert.match(run.stderr, /rotated agent bot \(1 grants re-wrapped\)/);
  assert.equal(await sdkGet(token("bot-2"), "api-key"), "api value");
  assert.equal(await sdkGet(token("bot-2"), "db"), "error: not_found");
  assert.equal(await sdkGet(token("bot"), "api-key"), "error: unauthenticated", "old token dead");
});

test("a revoked agent put back as a grantee in the database gets nothing from secret set", async () => {
  const bot = agentId("bot");
  const row = db
    .prepare(
      "SELECT g.* FROM grants g JOIN secrets s ON s.id = g.secret_id WHERE g.agent_id = ? AND s.name = 'api-key'",
    )
    .get(bot) as Record<string, unknown>;
  assert.ok(row, "bot holds a wrap of api-key");
  await ctx.ok(["agent", "revoke", "bot"]);
  // The server colludes with the revoked agent: it is live again and its grant row is back.
  db.prepare("UPDATE agents SET revoked_at = NULL WHERE id = ?").run(bot);
  const columns = Object.keys(row);
  db.prepare(
    `INSERT INTO grants (${columns.join(", ")}) VALUES (${columns.map((c) => `@${c}`).join(", ")})`,
  ).run(row);
  const before = versions("api-key");
  const run = await ctx.keyhole(["secret", "set", "api-key"], { input: "rotated upstream" });
  assert.equal(run.code, 1);
  assert.match(
    run.stderr,
    /^keyhole: the server lists agent 'bot' \(agt_[\w-]+\) as a grantee of 'api-key', but the owner state on this machine has no such grant .*; nothing was wrapped\n$/,
  );
  assert.equal(versions("api-key"), before, "no version was written");
  // Undo the tampering: the owner's write goes through, for the one agent still granted.
  db.prepare("DELETE FROM grants WHERE agent_id = ?").run(bot);
  db.prepare("UPDATE agents SET revoked_at = ? WHERE id = ?").run(Date.now(), bot);
  const set = await ctx.ok(["secret", "set", "api-key"], "rotated upstream");
  assert.match(set.stderr, /wrapped for the owner and 1 agent\)/);
  assert.equal(await sdkGet(token("good"), "api-key"), "rotated upstream");
});

test("a grant whose hosts the database dropped is refused, and the pinned hosts are signed", async () => {
  await ctx.ok(["grant", "add", "good", "db", "--hosts", "db.example.com"]);
  const good = agentId("good");
  const setHosts = db.prepare(
    "UPDATE grants SET allowed_hosts = ? WHERE agent_id = ? AND secret_id = (SELECT id FROM secrets WHERE name = 'db')",
  );
  setHosts.run("[]", good);
  const before = versions("db");
  const run = await ctx.keyhole(["secret", "set", "db"], { input: "db value 2" });
  assert.equal(run.code, 1);
  assert.match(run.stderr, /changed the expiry or hosts of agent 'good''s grant of 'db'/);
  assert.equal(versions("db"), before);
  setHosts.run('["db.example.com"]', good);
  await ctx.ok(["secret", "set", "db"], "db value 2");
  const hosts = db
    .prepare(
      "SELECT g.allowed_hosts FROM grants g JOIN secrets s ON s.id = g.secret_id WHERE g.agent_id = ? AND s.name = 'db'",
    )
    .get(good) as { allowed_hosts: string };
  assert.equal(hosts.allowed_hosts, '["db.example.com"]');
});
