// Security review H2 and M3, against the fake server: the owner CLI decides from its own pins
// (config.json) who gets a wrap, for which key and with which limits. A server that re-lists a
// revoked agent, adds a grantee, changes limits, serves a pre-rotation key or drops a grant gets
// nothing uploaded; a rotate after a grant expired re-wraps only the active grants.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, beforeEach, test } from "node:test";
import { decodeBase64url, encodeBase64url, fingerprint, type GrantUpload } from "@keyhole/core";
import { runCli } from "../cli.js";
import type { FakeAgent, FakeSecret } from "../test-support/fake-server.js";
import { memoryIo } from "../test-support/memory-io.js";
import { type OwnerFixture, ownerFixture } from "../test-support/owner-fixture.js";
import { readConfig } from "./config.js";

const fixtures: OwnerFixture[] = [];
after(async () => {
  for (const fixture of fixtures) await fixture.close();
});

let f: OwnerFixture;
beforeEach(async () => {
  f = await ownerFixture();
  fixtures.push(f);
  await ok(["secret", "set", "api-key"], "value 1");
  await ok(["secret", "set", "db"], "db value");
  await ok(["agent", "create", "bot", "--grant", "api-key"]);
  f.fake.requests.length = 0;
});

async function ok(argv: string[], stdin?: string, now?: () => number) {
  const run = await f.cli(argv, {
    ...(stdin === undefined ? {} : { stdin }),
    ...(now === undefined ? {} : { now }),
  });
  assert.equal(run.code, 0, `${argv.join(" ")}: ${run.io.err()}`);
  return run;
}

function agent(name: string): FakeAgent {
  const found = f.fake.agents.get(name);
  assert.ok(found);
  return found;
}

function secret(name: string): FakeSecret {
  const found = f.fake.secrets.get(name);
  assert.ok(found);
  return found;
}

/** The writes that reached the server. */
function uploads(): string[] {
  return f.fake.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path}`);
}

/** Runs `secret set api-key` and checks it was refused with `message`, writing nothing. */
async function refusedSet(message: RegExp): Promise<void> {
  const versions = secret("api-key").versions.length;
  f.fake.requests.length = 0;
  const run = await f.cli(["secret", "set", "api-key"], { stdin: "new value" });
  assert.equal(run.code, 1);
  assert.match(run.io.err(), message);
  assert.match(run.io.err(), /nothing was wrapped/);
  assert.deepEqual(uploads(), [], "nothing was uploaded");
  assert.equal(secret("api-key").versions.length, versions, "no version was written");
}

test("owner commands pin agents and grants in config.json, and un-pin them", async () => {
  const botId = agent("bot").id;
  const apiId = secret("api-key").id;
  const dbId = secret("db").id;
  let config = await readConfig(f.home);
  assert.deepEqual(Object.keys(config.agents), [botId]);
  assert.equal(config.agents[botId]?.name, "bot");
  assert.equal(config.agents[botId]?.revoked, false);
  assert.equal(config.agents[botId]?.created_at, agent("bot").created_at);
  assert.deepEqual(config.grants[apiId]?.[botId], {
    secret_name: "api-key",
    not_after: 0,
    allowed_hosts: [],
  });

  await ok(["grant", "add", "bot", "db", "--expires", "1h", "--hosts", "db.example"]);
  config = await readConfig(f.home);
  assert.deepEqual(config.grants[dbId]?.[botId]?.allowed_hosts, ["db.example"]);
  assert.equal(config.grants[dbId]?.[botId]?.not_after, secret("db").grants.get(botId)?.not_after);

  const before = config.agents[botId];
  await ok(["agent", "rotate", "bot"]);
  config = await readConfig(f.home);
  assert.notEqual(config.agents[botId]?.enc_fpr, before?.enc_fpr, "rotate re-pins the key");
  assert.equal(config.agents[botId]?.created_at, agent("bot").created_at);
  assert.equal(config.agents[botId]?.pending, null);

  await ok(["grant", "rm", "bot", "db"]);
  assert.equal((await readConfig(f.home)).grants[dbId], undefined);

  await ok(["agent", "revoke", "bot"]);
  config = await readConfig(f.home);
  assert.equal(config.agents[botId]?.revoked, true);
  assert.deepEqual(config.grants, {}, "a revoke forgets all the agent's grants");

  await ok(["agent", "create", "bot2", "--grant", "db"]);
  assert.ok((await readConfig(f.home)).grants[dbId]);
  await ok(["secret", "rm", "db"]);
  assert.equal((await readConfig(f.home)).grants[dbId], undefined);
});

test("a revoked agent re-listed as a grantee: secret set refuses and uploads nothing", async () => {
  const bot = agent("bot");
  const api = secret("api-key");
  const grant = api.grants.get(bot.id) as GrantUpload;
  await ok(["agent", "revoke", "bot"]);
  assert.equal(api.grants.has(bot.id), false);
  // The server, colluding with the revoked agent's leaked token, lists it again.
  bot.revoked_at = null;
  api.grants.set(bot.id, grant);
  await refusedSet(
    /lists agent 'bot' \(agt_[\w-]+\) as a grantee of 'api-key', but the owner state/,
  );
  const add = await f.cli(["grant", "add", "bot", "db"]);
  assert.equal(add.code, 1);
  assert.match(add.io.err(), /agent 'bot' \(agt_[\w-]+\) was revoked from this machine/);
  assert.deepEqual(uploads(), []);
});

test("a grantee the owner never granted is refused", async () => {
  await ok(["agent", "create", "other"]);
  const other = agent("other");
  const api = secret("api-key");
  const template = api.grants.get(agent("bot").id) as GrantUpload;
  api.grants.set(other.id, { ...template, agent_id: other.id });
  await refusedSet(/lists agent 'other' .* has no such grant/);
});

test("limits changed by the server are refused; the pinned limits are what gets signed", async () => {
  await ok(["grant", "add", "bot", "db", "--expires", "1h", "--hosts", "db.example"]);
  const bot = agent("bot");
  const pinned = { ...(secret("db").grants.get(bot.id) as GrantUpload) };
  // An honest round first: the new version carries the pinned limits.
  await ok(["secret", "set", "db"], "db value 2");
  const rewrapped = secret("db").grants.get(bot.id) as GrantUpload;
  assert.equal(rewrapped.version, 2);
  assert.deepEqual(
    [rewrapped.not_after, rewrapped.allowed_hosts],
    [pinned.not_after, pinned.allowed_hosts],
  );
  // Now the server drops the expiry and the host restriction.
  Object.assign(rewrapped, { not_after: 0, allowed_hosts: [] });
  f.fake.requests.length = 0;
  const set = await f.cli(["secret", "set", "db"], { stdin: "db value 3" });
  assert.equal(set.code, 1);
  assert.match(set.io.err(), /changed the expiry or hosts of agent 'bot''s grant of 'db'/);
  const rotate = await f.cli(["agent", "rotate", "bot"]);
  assert.equal(rotate.code, 1);
  assert.match(rotate.io.err(), /the server changed agent 'bot''s grant of 'db'/);
  assert.equal(rotate.io.out(), "", "no token was shown");
  assert.deepEqual(uploads(), []);
  assert.equal(secret("db").versions.length, 2);
});

test("a pre-rotation key served for a rotated agent is refused", async () => {
  const bot = agent("bot");
  const old = { enc_pk: bot.enc_pk, created_at: bot.created_at, key_sig: bot.key_sig };
  await ok(["agent", "rotate", "bot"]);
  Object.assign(bot, old);
  await refusedSet(/the server's key for agent 'bot' is not the one this machine last gave it/);
  const add = await f.cli(["grant", "add", "bot", "db"]);
  assert.equal(add.code, 1);
  assert.match(add.io.err(), /not the one this machine last gave it/);
  const show = await f.cli(["agent", "show", "bot"]);
  assert.equal(show.code, 1);
  assert.match(show.io.out(), /key:\s+signed by this owner, but NOT the key this machine gave it/);
  assert.deepEqual(uploads(), []);
});

test("an active grant the server dropped is refused; grant rm here forgets it", async () => {
  secret("api-key").grants.delete(agent("bot").id);
  await refusedSet(
    /no longer lists agent 'bot''s grant of 'api-key'.*keyhole grant rm bot api-key/,
  );
  const rm = await f.cli(["grant", "rm", "bot", "api-key"]);
  assert.equal(rm.code, 1, "the server has no such grant");
  const set = await ok(["secret", "set", "api-key"], "new value");
  assert.match(set.io.err(), /wrapped for the owner and 0 agents/);
});

test("an agent unknown to this machine's owner state is refused with a clear message", async () => {
  const path = join(f.home, "config.json");
  const config = JSON.parse(await readFile(path, "utf8")) as { agents: unknown; grants: unknown };
  config.agents = {};
  config.grants = {};
  await writeFile(path, JSON.stringify(config));
  for (const argv of [
    ["grant", "add", "bot", "db"],
    ["agent", "rotate", "bot"],
  ]) {
    const run = await f.cli(argv);
    assert.equal(run.code, 1);
    assert.match(
      run.io.err(),
      /agent 'bot' \(agt_[\w-]+\) is not known to the owner state on this machine .*created from another machine/,
    );
  }
  await refusedSet(/lists agent 'bot' .* no such grant/);
  const show = await f.cli(["agent", "show", "bot"]);
  assert.equal(show.code, 0);
  assert.match(show.io.out(), /agent not created from this machine/);
});

test("rotate after a grant expired re-wraps only the active grants (M3)", async () => {
  await ok(["grant", "add", "bot", "db", "--expires", "1h"]);
  const later = () => Date.now() + 2 * 3_600_000;
  f.fake.now = later;
  f.fake.requests.length = 0;
  const run = await ok(["agent", "rotate", "bot"], undefined, later);
  const body = f.fake.requests.find((r) => r.path.endsWith("/rotate"))?.body as {
    grants: GrantUpload[];
  };
  assert.deepEqual(
    body.grants.map((g) => g.secret_id),
    [secret("api-key").id],
    "the expired db grant is not re-signed",
  );
  assert.ok(run.io.out().startsWith("kh1_"));
  assert.equal(secret("db").grants.has(agent("bot").id), false);
  // The expired grant stays pinned but is no longer expected from the server.
  await ok(["secret", "set", "db"], "db value 2", later);
  await ok(["secret", "set", "api-key"], "value 2", later);
  assert.equal(secret("api-key").grants.get(agent("bot").id)?.version, 2);
});

test("a grant the server still lists moments after it expired here is a retry, not an attack", async () => {
  await ok(["grant", "add", "bot", "db", "--expires", "1h"]);
  const justAfter = () => (secret("db").grants.get(agent("bot").id)?.not_after ?? 0) + 1000;
  f.fake.requests.length = 0;
  const run = await f.cli(["secret", "set", "db"], { stdin: "x", now: justAfter });
  assert.equal(run.code, 1);
  assert.match(run.io.err(), /expired moments ago by this machine's clock.*retry in a minute/);
  assert.deepEqual(uploads(), []);
  const wayAfter = () => justAfter() + 3_600_000;
  const late = await f.cli(["secret", "set", "db"], { stdin: "x", now: wayAfter });
  assert.equal(late.code, 1);
  assert.match(late.io.err(), /lists agent 'bot''s expired grant of 'db' as active/);
});

test("a rotate whose answer was lost is recognised by its pending key", async () => {
  const botId = agent("bot").id;
  const path = join(f.home, "config.json");
  const before = (await readConfig(f.home)).agents[botId];
  await ok(["agent", "rotate", "bot"]);
  const after = (await readConfig(f.home)).agents[botId];
  // As if the CLI died after the server committed: the old key current, the new one pending.
  const config = JSON.parse(await readFile(path, "utf8")) as {
    agents: Record<string, unknown>;
  };
  config.agents[botId] = {
    ...before,
    pending: { enc_fpr: after?.enc_fpr, created_at: after?.created_at },
  };
  await writeFile(path, JSON.stringify(config));
  await ok(["secret", "set", "api-key"], "value 2");
  const healed = (await readConfig(f.home)).agents[botId];
  assert.equal(healed?.enc_fpr, after?.enc_fpr);
  assert.equal(healed?.pending, null);
  await ok(["agent", "rotate", "bot"]);
});

test("a revoke in another terminal while secret set waits for the value: bot gets nothing", async () => {
  // Terminal A: `secret set api-key`, its session open, waiting for the value on stdin.
  let reading: () => void = () => undefined;
  const waiting = new Promise<void>((resolve) => {
    reading = resolve;
  });
  const stdin = new Readable({ read: () => reading() });
  const io = { ...memoryIo({ env: f.env }), stdin };
  const pending = runCli(["secret", "set", "api-key"], io);
  await waiting;
  // Terminal B revokes bot; the server (colluding, or not yet caught up) keeps listing it.
  const bot = agent("bot");
  const api = secret("api-key");
  const grant = api.grants.get(bot.id) as GrantUpload;
  await ok(["agent", "revoke", "bot"]);
  bot.revoked_at = null;
  api.grants.set(bot.id, grant);
  f.fake.requests.length = 0;
  // The new upstream key is pasted into A.
  stdin.push("new upstream key");
  stdin.push(null);
  assert.equal(await pending, 1, io.err());
  assert.match(io.err(), /lists agent 'bot' \(agt_[\w-]+\) as a grantee of 'api-key', but the/);
  assert.deepEqual(uploads(), [], "nothing was uploaded");
  assert.equal(secret("api-key").versions.length, 1);
});

test("after a database restore from before a rotate, agent rotate recovers the agent", async () => {
  const bot = agent("bot");
  const api = secret("api-key");
  const backup = { enc_pk: bot.enc_pk, created_at: bot.created_at, key_sig: bot.key_sig };
  const backupGrant = api.grants.get(bot.id) as GrantUpload;
  await ok(["grant", "add", "bot", "db", "--hosts", "db.example"]);
  await ok(["agent", "rotate", "bot"]);
  // The restored database: bot's pre-rotate key and api-key grant, and no db grant at all.
  Object.assign(bot, backup);
  api.grants.set(bot.id, backupGrant);
  secret("db").grants.delete(bot.id);
  // A wrap is still refused for a key that is not the pinned one...
  await refusedSet(/the server's key for agent 'bot' is not the one this machine last gave it/);
  // ...but a rotate, which wraps nothing for that key, works.
  f.fake.requests.length = 0;
  const run = await ok(["agent", "rotate", "bot"]);
  assert.ok(run.io.out().startsWith("kh1_"));
  assert.match(
    run.io.err(),
    /no longer has agent 'bot''s grant of 'db'.*`keyhole grant add bot db --hosts db\.example`/,
  );
  assert.deepEqual(uploads(), ["POST /v1/owner/agents/bot/rotate"]);
  const body = f.fake.requests.find((r) => r.path.endsWith("/rotate"))?.body as {
    grants: GrantUpload[];
  };
  assert.deepEqual(
    body.grants.map((g) => g.secret_id),
    [api.id],
    "only the pinned grant the server still has is re-wrapped",
  );
  const config = await readConfig(f.home);
  const pin = config.agents[bot.id];
  assert.equal(pin?.enc_fpr, encodeBase64url(await fingerprint(decodeBase64url(bot.enc_pk))));
  assert.equal(pin?.created_at, bot.created_at);
  assert.equal(config.grants[secret("db").id], undefined, "the lost grant is no longer pinned");
  assert.ok(config.grants[api.id]?.[bot.id]);
  // Everything works again; the lost grant comes back with grant add.
  await ok(["secret", "set", "api-key"], "value 2");
  assert.equal(api.grants.get(bot.id)?.version, 2);
  await ok(["grant", "add", "bot", "db"]);
  const set = await ok(["secret", "set", "db"], "db value 2");
  assert.match(set.io.err(), /wrapped for the owner and 1 agent\b/);
});

test("agent rotate still refuses an unsigned key, an unpinned grant and a revoked agent", async () => {
  await ok(["agent", "create", "other"]);
  const bot = agent("bot");
  const other = agent("other");
  const own = { enc_pk: bot.enc_pk, created_at: bot.created_at, key_sig: bot.key_sig };
  const refusedRotate = async (message: RegExp) => {
    f.fake.requests.length = 0;
    const run = await f.cli(["agent", "rotate", "bot"]);
    assert.equal(run.code, 1);
    assert.match(run.io.err(), message);
    assert.equal(run.io.out(), "", "no token was shown");
    assert.deepEqual(uploads(), []);
  };
  // Another agent's owner-signed key: its KHK1 names the other agent, so it fails here.
  Object.assign(bot, {
    enc_pk: other.enc_pk,
    created_at: other.created_at,
    key_sig: other.key_sig,
  });
  await refusedRotate(/the server's key for agent 'bot' is not signed by this owner/);
  Object.assign(bot, own);
  // A grant of db this machine never made, listed by the server.
  const db = secret("db");
  const template = secret("api-key").grants.get(bot.id) as GrantUpload;
  db.grants.set(bot.id, { ...template, secret_id: db.id });
  await refusedRotate(/lists a grant of 'db' to agent 'bot' that the owner state .* no record/);
  db.grants.delete(bot.id);
  // Revoked here, live on the server.
  await ok(["agent", "revoke", "bot"]);
  bot.revoked_at = null;
  await refusedRotate(/agent 'bot' \(agt_[\w-]+\) was revoked from this machine/);
});

test("agent create reuses a revoked agent's name, but not a live agent's", async () => {
  f.fake.requests.length = 0;
  const dup = await f.cli(["agent", "create", "bot"]);
  assert.equal(dup.code, 1);
  assert.match(dup.io.err(), /an agent named 'bot' already exists/);
  assert.deepEqual(uploads(), []);
  const oldId = agent("bot").id;
  await ok(["agent", "revoke", "bot"]);
  const run = await ok(["agent", "create", "bot", "--grant", "db"]);
  assert.ok(run.io.out().startsWith("kh1_"));
  const newId = agent("bot").id;
  assert.notEqual(newId, oldId);
  const config = await readConfig(f.home);
  assert.equal(config.agents[oldId]?.revoked, true);
  assert.equal(config.agents[newId]?.revoked, false);
  assert.equal(config.agents[newId]?.name, "bot");
  assert.ok(config.grants[secret("db").id]?.[newId]);
  const set = await ok(["secret", "set", "db"], "db value 2");
  assert.match(set.io.err(), /wrapped for the owner and 1 agent\b/);
});
