// The whole owner lifecycle through the real executable, a real `keyhole server` process with
// its SQLite file, and the real SDK as the agent: init, secrets, agents, grants, rotate,
// revoke with its blast radius, audit.
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Vault } from "@keyhole/sdk";
import {
  cleanEnv,
  type E2eContext,
  e2eWithServer,
  type ServerProcess,
  stopE2e,
} from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;

before(async () => {
  ({ ctx, server } = await e2eWithServer());
});
after(() => stopE2e(ctx, server));

async function sdkGet(tokenFile: string, name: string): Promise<string> {
  const vault = new Vault({ addr: server.url, tokenFile });
  try {
    return await vault.get(name);
  } finally {
    vault.close();
  }
}

async function sdkError(tokenFile: string, name: string): Promise<string> {
  try {
    await sdkGet(tokenFile, name);
    return "no error";
  } catch (error) {
    return (error as { code?: string }).code ?? "no code";
  }
}

test("a fresh server prints a bootstrap code and keeps it in DATA_DIR/bootstrap-code (0600)", async () => {
  assert.match(server.bootstrapCode ?? "", /^\S{8,}$/);
  const path = join(server.dataDir, "bootstrap-code");
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal((await readFile(path, "utf8")).trim(), server.bootstrapCode);
});

test("init with a wrong bootstrap code fails and leaves no owner behind", async () => {
  const run = await ctx.keyhole(["init", "--bootstrap-code", "not-the-code"]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /^keyhole: /);
  await assert.rejects(stat(join(ctx.env.KEYHOLE_HOME as string, "owner.key")));
});

test("init claims the server; the key file is 0600 in a 0700 home", async () => {
  const run = await ctx.ok(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  assert.match(run.stderr, /initialized vault vlt_/);
  const home = ctx.env.KEYHOLE_HOME as string;
  assert.equal((await stat(join(home, "owner.key"))).mode & 0o777, 0o600);
  assert.equal((await stat(home)).mode & 0o777, 0o700);
  await assert.rejects(stat(join(server.dataDir, "bootstrap-code")), "the code is used up");
});

test("a second init is refused: by the existing key, and by the claimed server", async () => {
  const same = await ctx.keyhole(["init", "--bootstrap-code", "x"]);
  assert.equal(same.code, 1);
  assert.match(same.stderr, /an owner already exists/);
  const other = await ctx.keyhole(["init", "--bootstrap-code", "x"], {
    env: { KEYHOLE_HOME: join(ctx.dir, "intruder") },
  });
  assert.equal(other.code, 1);
  assert.match(other.stderr, /already has an owner/);
});

test("secret set reads stdin, get prints it back, list/history show it (also as JSON)", async () => {
  await ctx.ok(["secret", "set", "openai-api-key"], "sk-first\n");
  await ctx.ok(["secret", "set", "openai-api-key"], "sk-second\n");
  await ctx.ok(["secret", "set", "db-password"], "hunter2");
  const get = await ctx.ok(["secret", "get", "openai-api-key"]);
  assert.equal(get.stdout, "sk-second");
  const list = await ctx.ok(["secret", "list"]);
  assert.match(list.stdout, /^NAME\s+VERSION\s+SIZE/);
  assert.match(list.stdout, /openai-api-key\s+2\s/);
  const json = JSON.parse((await ctx.ok(["secret", "list", "--json"])).stdout) as {
    name: string;
    version: number;
  }[];
  assert.deepEqual(json.map((s) => [s.name, s.version]).sort(), [
    ["db-password", 1],
    ["openai-api-key", 2],
  ]);
  const history = JSON.parse(
    (await ctx.ok(["secret", "history", "openai-api-key", "--json"])).stdout,
  ) as { version: number }[];
  assert.deepEqual(
    history.map((v) => v.version),
    [1, 2],
  );
  assert.match(
    (await ctx.ok(["secret", "history", "openai-api-key"])).stdout,
    /^VERSION\s+CREATED\s+SIZE\n1\s/,
  );
});

test("agent create prints the token once on stdout; the SDK fetches with it", async () => {
  const run = await ctx.ok(["agent", "create", "stdout-bot", "--grant", "openai-api-key"]);
  const token = run.stdout.trim();
  assert.match(token, /^kh1_[A-Za-z0-9_-]{91}$/);
  assert.ok(!run.stderr.includes(token));
  const { writeFile } = await import("node:fs/promises");
  const file = join(ctx.dir, "stdout-bot.token");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  assert.equal(await sdkGet(file, "openai-api-key"), "sk-second");
});

test("agent create --token-file writes a 0600 file, prints nothing secret, and the SDK uses it", async () => {
  const file = join(ctx.dir, "bot.token");
  const run = await ctx.ok([
    "agent",
    "create",
    "bot",
    "--grant",
    "openai-api-key,db-password",
    "--expires",
    "30d",
    "--token-file",
    file,
  ]);
  assert.equal(run.stdout, "");
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  const token = (await readFile(file, "utf8")).trim();
  assert.ok(!run.stderr.includes(token));
  assert.equal(await sdkGet(file, "openai-api-key"), "sk-second");
  assert.equal(await sdkGet(file, "db-password"), "hunter2");
  // Overwriting keeps the mode and replaces the content atomically.
  await ctx.ok(["agent", "create", "bot2", "--token-file", file]);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.notEqual((await readFile(file, "utf8")).trim(), token);
  await ctx.ok(["agent", "rotate", "bot", "--token-file", file]);
});

test("a new secret version reaches the agent", async () => {
  await ctx.ok(["secret", "set", "openai-api-key"], "sk-third");
  assert.equal(await sdkGet(join(ctx.dir, "bot.token"), "openai-api-key"), "sk-third");
});

test("agent list and show, as tables and JSON", async () => {
  const list = await ctx.ok(["agent", "list"]);
  assert.match(list.stdout, /^NAME\s+ID\s+STATUS\s+GRANTS/);
  assert.match(list.stdout, /\nbot\s+agt_\S+\s+active\s+2\s/);
  const agents = JSON.parse((await ctx.ok(["agent", "list", "--json"])).stdout) as {
    name: string;
  }[];
  assert.deepEqual(agents.map((a) => a.name).sort(), ["bot", "bot2", "stdout-bot"]);
  const show = await ctx.ok(["agent", "show", "bot"]);
  assert.match(show.stdout, /key:\s+signed by this owner/);
  assert.match(show.stdout, /SECRET\s+VERSION\s+EXPIRES\s+HOSTS/);
  const detail = JSON.parse((await ctx.ok(["agent", "show", "bot", "--json"])).stdout) as {
    key_verified: boolean;
    grants: unknown[];
    expires_at: number;
  };
  assert.equal(detail.key_verified, true);
  assert.equal(detail.grants.length, 2);
  assert.ok(detail.expires_at > Date.now() + 29 * 86_400_000);
});

test("grant add / list / rm: the agent gains and loses access", async () => {
  const file = join(ctx.dir, "bot2.token");
  await ctx.ok(["agent", "rotate", "bot2", "--token-file", file]);
  assert.equal(await sdkError(file, "db-password"), "not_found");
  await ctx.ok([
    "grant",
    "add",
    "bot2",
    "db-password",
    "--expires",
    "1h",
    "--hosts",
    "DB.example.com,api.example.com:8443",
  ]);
  assert.equal(await sdkGet(file, "db-password"), "hunter2");
  const grants = JSON.parse(
    (await ctx.ok(["grant", "list", "--agent", "bot2", "--json"])).stdout,
  ) as {
    secret_name: string;
    allowed_hosts: string[];
    not_after: number;
  }[];
  assert.equal(grants.length, 1);
  assert.deepEqual(grants[0]?.allowed_hosts, ["api.example.com:8443", "db.example.com"]);
  assert.ok((grants[0]?.not_after ?? 0) > Date.now() + 50 * 60_000);
  assert.match(
    (await ctx.ok(["grant", "list"])).stdout,
    /^AGENT\s+SECRET\s+VERSION\s+EXPIRES\s+HOSTS/,
  );
  const rm = await ctx.ok(["grant", "rm", "bot2", "db-password"]);
  assert.match(rm.stderr, /rotation recommended/);
  assert.equal(await sdkError(file, "db-password"), "not_found");
  const secrets = JSON.parse((await ctx.ok(["secret", "list", "--json"])).stdout) as {
    name: string;
    rotation_recommended: boolean;
  }[];
  assert.equal(secrets.find((s) => s.name === "db-password")?.rotation_recommended, true);
});

test("agent rotate: the old token gets 401, the new one works through the SDK", async () => {
  const oldFile = join(ctx.dir, "bot.token");
  const newFile = join(ctx.dir, "bot-new.token");
  assert.equal(await sdkGet(oldFile, "db-password"), "hunter2");
  const run = await ctx.ok(["agent", "rotate", "bot", "--token-file", newFile]);
  assert.match(run.stderr, /rotated agent bot \(2 grants re-wrapped\)/);
  assert.equal(await sdkError(oldFile, "db-password"), "unauthenticated");
  assert.equal(await sdkGet(newFile, "db-password"), "hunter2");
  assert.equal(await sdkGet(newFile, "openai-api-key"), "sk-third");
});

test("agent revoke cuts the agent off and prints its blast radius", async () => {
  const file = join(ctx.dir, "bot-new.token");
  const run = await ctx.ok(["agent", "revoke", "bot"]);
  assert.match(run.stdout, /^revoked agent bot \(agt_\S+\): its token no longer works/);
  assert.match(run.stdout, /SECRET\s+GRANTED\s+READS\s+FIRST READ\s+LAST READ/);
  assert.match(run.stdout, /db-password\s+yes\s+[1-9]\d*\s+\d{4}-\d\d-\d\d /);
  assert.match(run.stdout, /openai-api-key\s+yes\s+[1-9]\d*\s+/);
  assert.match(run.stdout, /read by the agent: .*db-password/);
  assert.match(run.stdout, /rotate them upstream/);
  assert.equal(await sdkError(file, "openai-api-key"), "unauthenticated");
  const listed = JSON.parse((await ctx.ok(["agent", "list", "--json"])).stdout) as {
    name: string;
    revoked_at: number | null;
  }[];
  assert.ok(listed.every((a) => a.name !== "bot" || a.revoked_at !== null));
});

test("agent revoke --json gives the blast radius as data", async () => {
  const run = await ctx.ok(["agent", "revoke", "stdout-bot", "--json"]);
  const body = JSON.parse(run.stdout) as { blast_radius: { secret: string; reads: number }[] };
  assert.deepEqual(
    body.blast_radius.map((e) => [e.secret, e.reads]),
    [["openai-api-key", 1]],
  );
});

test("audit shows the log with filters, as a table and as JSON, and verify pins it", async () => {
  const table = await ctx.ok(["audit"]);
  assert.match(table.stdout, /^SEQ\s+TIME\s+ACTOR\s+ACTION\s+RESULT\s+AGENT\s+SECRET/);
  assert.match(table.stdout, /agent:bot2\s+secret\.read\s+ok\s+bot2\s+db-password/);
  const json = JSON.parse((await ctx.ok(["audit", "--agent", "bot2", "--json"])).stdout) as {
    action: string;
  }[];
  assert.ok(json.length > 0 && json.some((e) => e.action === "secret.read"));
  const limited = JSON.parse(
    (await ctx.ok(["audit", "--limit", "3", "--since", "1h", "--json"])).stdout,
  ) as unknown[];
  assert.equal(limited.length, 3);
  const bySecret = JSON.parse(
    (await ctx.ok(["audit", "--secret", "db-password", "--json"])).stdout,
  ) as { secret_id: string }[];
  assert.equal(new Set(bySecret.map((e) => e.secret_id)).size, 1);
  const verify = await ctx.ok(["audit", "verify"]);
  assert.match(
    verify.stdout,
    /^audit log ok: \d+ entries chain correctly; checkpoint at size \d+ is signed by the pinned audit key \(first pin\); pinned\n$/,
  );
  const again = await ctx.ok(["audit", "verify"]);
  assert.match(again.stdout, /previous pin at size \d+ still matches/);
});

test("audit --follow streams new entries until SIGINT", async () => {
  const { startKeyhole } = await import("./harness.js");
  const follow = startKeyhole(
    ["audit", "--follow", "--json", "--agent", "bot2"],
    cleanEnv(ctx.dir, ctx.env),
  );
  await follow.waitFor(/"action"/);
  const count = () => follow.stdout().trim().split("\n").length;
  const before = count();
  assert.equal(await sdkError(join(ctx.dir, "bot2.token"), "openai-api-key"), "not_found");
  for (let waited = 0; count() === before && waited < 5000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const exit = await follow.stop("SIGINT");
  assert.equal(exit.code, 0);
  const lines = follow
    .stdout()
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { seq: number });
  assert.ok(lines.length > before);
  assert.deepEqual(
    lines.map((l) => l.seq),
    [...lines.map((l) => l.seq)].sort((a, b) => a - b),
  );
});

test("secret rm deletes the secret for owner and agents", async () => {
  await ctx.ok(["secret", "rm", "db-password"]);
  const get = await ctx.keyhole(["secret", "get", "db-password"]);
  assert.equal(get.code, 1);
  assert.equal(get.stderr, "keyhole: no secret named 'db-password'\n");
  const missing = await ctx.keyhole(["agent", "show", "nobody"]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, "keyhole: no agent named 'nobody'\n");
});

test("keyhole server stops cleanly on SIGTERM, exit 0", async () => {
  const exit = await server.process.stop("SIGTERM");
  assert.equal(exit.code, 0);
  assert.match(server.process.stderr(), /SIGTERM: shutting down/);
});
