// The owner commands end to end against the in-memory fake server: what they upload must be
// exactly what an agent can verify and open.
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  agentRecipientId,
  decodeBase64url,
  decodeUtf8,
  fingerprint,
  type GrantUpload,
  openValue,
  parseToken,
  parseValueEnvelope,
  unwrapDek,
  verifyAgentKey,
  verifyGrant,
} from "@keyhole/core";
import type { FakeSecret } from "../test-support/fake-server.js";
import { type OwnerFixture, ownerFixture } from "../test-support/owner-fixture.js";
import { readConfig } from "./config.js";

let f: OwnerFixture;
before(async () => {
  f = await ownerFixture();
});
after(async () => {
  await f.close();
});

/** Opens `secret` as the agent holding `tokenText` would, checking every signature. */
async function openAsAgent(tokenText: string, secretName: string): Promise<string> {
  const config = await readConfig(f.home);
  const ownerPk = decodeBase64url(config.owner_sign_pk);
  const token = parseToken(tokenText);
  assert.deepEqual(token.ownerFingerprint, await fingerprint(ownerPk), "token pins the owner key");
  const keys = await token.deriveKeys();
  const agent = [...f.fake.agents.values()].find(
    (a) => a.enc_pk === Buffer.from(keys.recipient.publicKey).toString("base64url"),
  );
  assert.ok(agent, "the server holds the agent's derived public key");
  const khk1 = {
    vaultId: f.fake.vaultId,
    agentId: agent.id,
    agentPublicKey: keys.recipient.publicKey,
    createdAt: agent.created_at,
  };
  assert.equal(await verifyAgentKey(ownerPk, khk1, decodeBase64url(agent.key_sig)), true);
  const secret = f.fake.secrets.get(secretName) as FakeSecret;
  const version = secret.versions.at(-1);
  const grant = secret.grants.get(agent.id) as GrantUpload;
  assert.ok(version && grant);
  assert.equal(grant.version, version.version);
  const envelope = decodeBase64url(version.value);
  const wrap = decodeBase64url(grant.wrap);
  const { dekId } = parseValueEnvelope(envelope);
  const statement = {
    vaultId: f.fake.vaultId,
    secretId: secret.id,
    secretName,
    version: version.version,
    dekId,
    agentId: agent.id,
    recipientFingerprint: await fingerprint(keys.recipient.publicKey),
    valueEnvelope: envelope,
    wrap,
    issuedAt: grant.issued_at,
    notAfter: grant.not_after,
    allowedHosts: grant.allowed_hosts,
  };
  assert.equal(await verifyGrant(ownerPk, statement, decodeBase64url(grant.sig)), true);
  const ref = { vaultId: f.fake.vaultId, secretId: secret.id, version: version.version };
  const dek = await unwrapDek(ref, dekId, agentRecipientId(agent.id), keys.recipient, wrap);
  return decodeUtf8(await openValue(ref, dek, envelope));
}

test("init wrote a config pinning the vault, the owner keys and the audit key", async () => {
  const config = await readConfig(f.home);
  assert.equal(config.vault_id, f.fake.vaultId);
  assert.equal(config.audit_pk, Buffer.from(f.fake.auditKey.publicKey).toString("base64url"));
  assert.equal((await stat(join(f.home, "config.json"))).mode & 0o777, 0o600);
});

test("init refuses to overwrite an existing owner", async () => {
  const again = await f.cli(["init", "--bootstrap-code", f.fake.bootstrapCode]);
  assert.equal(again.code, 1);
  assert.match(again.io.err(), /^keyhole: an owner already exists in .*refusing to overwrite/);
});

test("secret set then get returns the value byte for byte, minus one trailing newline", async () => {
  const set = await f.cli(["secret", "set", "api-key"], { stdin: "s3cr3t value\n\n" });
  assert.equal(set.code, 0, set.io.err());
  assert.match(set.io.err(), /stored api-key version 1/);
  assert.equal(set.io.out(), "");
  const get = await f.cli(["secret", "get", "api-key"]);
  assert.equal(get.code, 0, get.io.err());
  assert.equal(get.io.out(), "s3cr3t value\n");
  assert.equal(get.io.err(), "", "a signed value gives no warning");
});

test("secret set never takes the value from argv", async () => {
  const run = await f.cli(["secret", "set", "api-key", "the-value"]);
  assert.equal(run.code, 2);
  assert.match(run.io.err(), /never from the command line/);
});

test("an empty value is refused", async () => {
  const run = await f.cli(["secret", "set", "empty"], { stdin: "\n" });
  assert.equal(run.code, 2);
  assert.equal(f.fake.secrets.has("empty"), false);
});

test("agent create mints a token the agent can use to verify and open its grants", async () => {
  await f.cli(["secret", "set", "db-password"], { stdin: "pw-1" });
  const run = await f.cli([
    "agent",
    "create",
    "bot",
    "--grant",
    "api-key,db-password",
    "--expires",
    "30d",
  ]);
  assert.equal(run.code, 0, run.io.err());
  const token = run.io.out().trim();
  assert.match(token, /^kh1_[A-Za-z0-9_-]{91}$/);
  assert.ok(!run.io.err().includes(token), "the token goes to stdout only");
  assert.equal(await openAsAgent(token, "api-key"), "s3cr3t value\n");
  assert.equal(await openAsAgent(token, "db-password"), "pw-1");
  const agent = f.fake.agents.get("bot");
  assert.ok(agent?.expires_at !== null && (agent?.expires_at ?? 0) > Date.now() + 29 * 86_400_000);
});

test("agent create refuses a name that exists and unknown secrets", async () => {
  const taken = await f.cli(["agent", "create", "bot"]);
  assert.equal(taken.code, 1);
  assert.match(taken.io.err(), /already exists/);
  const unknown = await f.cli(["agent", "create", "bot2", "--grant", "nope"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.io.err(), /no secret named 'nope'/);
  assert.equal(f.fake.agents.has("bot2"), false);
});

test("agent create --token-file writes the token with mode 0600 and prints nothing secret", async () => {
  const run = await f.cli([
    "agent",
    "create",
    "filebot",
    "--grant",
    "api-key",
    "--token-file",
    "filebot.token",
  ]);
  assert.equal(run.code, 0, run.io.err());
  assert.equal(run.io.out(), "");
  const path = join(run.io.cwd, "filebot.token");
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const token = (await readFile(path, "utf8")).trim();
  assert.ok(!run.io.err().includes(token));
  assert.equal(await openAsAgent(token, "api-key"), "s3cr3t value\n");
});

test("a new version is re-wrapped and re-signed for every granted agent", async () => {
  const tokenPath = join(f.home, "..", "filebot.token");
  const set = await f.cli(["secret", "set", "api-key"], { stdin: "v2" });
  assert.match(set.io.err(), /version 2 \(wrapped for the owner and 2 agents\)/);
  const token = (await readFile(tokenPath, "utf8")).trim();
  assert.equal(await openAsAgent(token, "api-key"), "v2");
});

test("agent rotate gives a new token that opens every grant; the old key is gone", async () => {
  const oldKey = f.fake.agents.get("bot")?.enc_pk;
  const run = await f.cli(["agent", "rotate", "bot"]);
  assert.equal(run.code, 0, run.io.err());
  const token = run.io.out().trim();
  assert.notEqual(f.fake.agents.get("bot")?.enc_pk, oldKey);
  assert.equal(await openAsAgent(token, "api-key"), "v2");
  assert.equal(await openAsAgent(token, "db-password"), "pw-1");
});

test("grant add signs canonical hosts and the expiry into the grant", async () => {
  await f.cli(["agent", "create", "scoped"], { stdin: "" });
  const before = Date.now();
  const run = await f.cli([
    "grant",
    "add",
    "scoped",
    "api-key",
    "--expires",
    "1h",
    "--hosts",
    "API.openai.com,a.example:8443,api.openai.com",
  ]);
  assert.equal(run.code, 0, run.io.err());
  const agentId = f.fake.agents.get("scoped")?.id ?? "";
  const grant = f.fake.secrets.get("api-key")?.grants.get(agentId);
  assert.deepEqual(grant?.allowed_hosts, ["a.example:8443", "api.openai.com"]);
  assert.ok(
    (grant?.not_after ?? 0) >= before + 3_600_000 &&
      (grant?.not_after ?? 0) <= Date.now() + 3_600_000,
  );
  const bad = await f.cli(["grant", "add", "scoped", "api-key", "--hosts", "https://x.com/"]);
  assert.equal(bad.code, 2);
});

test("a version race (409) is re-read and retried, up to three retries", async () => {
  f.fake.conflicts = 2;
  const ok = await f.cli(["secret", "set", "api-key"], { stdin: "v3" });
  assert.equal(ok.code, 0, ok.io.err());
  f.fake.conflicts = 4;
  const fail = await f.cli(["secret", "set", "api-key"], { stdin: "v4" });
  assert.equal(fail.code, 1);
  assert.match(fail.io.err(), /^keyhole: conflict\n$/);
  f.fake.conflicts = 0;
  assert.equal(f.fake.secrets.get("api-key")?.versions.at(-1)?.version, 3);
});

test("listings print JSON with --json", async () => {
  const secrets = await f.cli(["secret", "list", "--json"]);
  assert.deepEqual((JSON.parse(secrets.io.out()) as { name: string }[]).map((s) => s.name).sort(), [
    "api-key",
    "db-password",
  ]);
  const agents = await f.cli(["agent", "list", "--json"]);
  assert.ok((JSON.parse(agents.io.out()) as { name: string }[]).some((a) => a.name === "bot"));
  const grants = await f.cli(["grant", "list", "--json"]);
  assert.ok(Array.isArray(JSON.parse(grants.io.out())));
  const show = await f.cli(["agent", "show", "bot", "--json"]);
  assert.equal((JSON.parse(show.io.out()) as { key_verified: boolean }).key_verified, true);
});

test("human listings are tables", async () => {
  const secrets = await f.cli(["secret", "list"]);
  assert.match(secrets.io.out(), /^NAME\s+VERSION\s+SIZE\s+AGENTS\s+UPDATED/);
  const show = await f.cli(["agent", "show", "bot"]);
  assert.match(show.io.out(), /key:\s+signed by this owner/);
});

test("a wrong passphrase fails with one line and exit 1", async () => {
  const run = await f.cli(["secret", "list"], { env: { KEYHOLE_PASSPHRASE: "wrong passphrase" } });
  assert.equal(run.code, 1);
  assert.equal(run.io.err(), "keyhole: wrong passphrase or damaged key file\n");
});

test("no passphrase and no terminal is a clear error", async () => {
  const run = await f.cli(["secret", "list"], { env: { KEYHOLE_PASSPHRASE: undefined } });
  assert.equal(run.code, 1);
  assert.match(run.io.err(), /no terminal to ask for the passphrase; set KEYHOLE_PASSPHRASE/);
});

test("the passphrase can be typed on a muted prompt", async () => {
  const run = await f.cli(["secret", "list"], {
    env: { KEYHOLE_PASSPHRASE: undefined },
    keystrokes: ["correct horse battery staple\r"],
  });
  assert.equal(run.code, 0, run.io.err());
  assert.equal(run.io.terminalOutput(), "Owner passphrase: \n");
});
