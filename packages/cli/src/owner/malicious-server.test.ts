// SECURITY-TESTS #8, owner side: a server that swaps an agent's key, forges a value sealed to
// the owner's public key or rolls a version back is caught by the owner CLI, which then wraps
// and uploads nothing.
import assert from "node:assert/strict";
import { after, beforeEach, test } from "node:test";
import {
  decodeBase64url,
  deriveRecipientKeyPair,
  encodeBase64url,
  generateSigningSeed,
  importSigningKey,
  ownerRecipientId,
  randomBytes,
  sealValue,
  signAgentKey,
  utf8,
  wrapDek,
} from "@keyhole/core";
import type { FakeAgent, FakeSecret } from "../test-support/fake-server.js";
import { type OwnerFixture, ownerFixture } from "../test-support/owner-fixture.js";
import { readConfig } from "./config.js";

const fixtures: OwnerFixture[] = [];
after(async () => {
  for (const f of fixtures) await f.close();
});

let f: OwnerFixture;
beforeEach(async () => {
  f = await ownerFixture();
  fixtures.push(f);
  assert.equal((await f.cli(["secret", "set", "api-key"], { stdin: "real value" })).code, 0);
  assert.equal((await f.cli(["agent", "create", "bot"])).code, 0);
  f.fake.requests.length = 0;
});

async function randomPublicKey(): Promise<string> {
  return encodeBase64url((await deriveRecipientKeyPair(randomBytes(32))).publicKey);
}

function uploads(): string[] {
  return f.fake.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path}`);
}

test("grant add refuses an agent key swapped by the server and uploads no wrap", async () => {
  (f.fake.agents.get("bot") as FakeAgent).enc_pk = await randomPublicKey();
  const run = await f.cli(["grant", "add", "bot", "api-key"]);
  assert.equal(run.code, 1);
  assert.match(
    run.io.err(),
    /^keyhole: the server's key for agent 'bot' is not signed by this owner/,
  );
  assert.deepEqual(uploads(), []);
  assert.equal(f.fake.secrets.get("api-key")?.grants.size, 0);
});

test("an agent key signed by another owner key (the server's own) is refused too", async () => {
  const agent = f.fake.agents.get("bot") as FakeAgent;
  const impostor = await importSigningKey(generateSigningSeed());
  const publicKey = (await deriveRecipientKeyPair(randomBytes(32))).publicKey;
  agent.enc_pk = encodeBase64url(publicKey);
  agent.key_sig = encodeBase64url(
    await signAgentKey(impostor, {
      vaultId: f.fake.vaultId,
      agentId: agent.id,
      agentPublicKey: publicKey,
      createdAt: agent.created_at,
    }),
  );
  const run = await f.cli(["grant", "add", "bot", "api-key"]);
  assert.equal(run.code, 1);
  assert.deepEqual(uploads(), []);
  const show = await f.cli(["agent", "show", "bot"]);
  assert.equal(show.code, 1);
  assert.match(show.io.out(), /NOT SIGNED BY THIS OWNER/);
});

test("secret set refuses when a grantee's key was swapped and writes no version", async () => {
  assert.equal((await f.cli(["grant", "add", "bot", "api-key"])).code, 0);
  f.fake.requests.length = 0;
  (f.fake.agents.get("bot") as FakeAgent).enc_pk = await randomPublicKey();
  const run = await f.cli(["secret", "set", "api-key"], { stdin: "new value" });
  assert.equal(run.code, 1);
  assert.match(run.io.err(), /not signed by this owner/);
  assert.deepEqual(uploads(), []);
  assert.equal(f.fake.secrets.get("api-key")?.versions.length, 1);
});

/** Replaces the latest version with a value the server sealed to the owner's public key. */
async function forgeValue(ownerSig: "drop" | "keep"): Promise<void> {
  const config = await readConfig(f.home);
  const secret = f.fake.secrets.get("api-key") as FakeSecret;
  const version = secret.versions.at(-1);
  assert.ok(version);
  const ref = { vaultId: f.fake.vaultId, secretId: secret.id, version: version.version };
  const { envelope, dek, dekId } = await sealValue(ref, utf8("forged by the server"));
  const wrap = await wrapDek(ref, dekId, dek, {
    recipientId: ownerRecipientId(f.fake.vaultId),
    publicKey: decodeBase64url(config.owner_enc_pk),
  });
  version.value = encodeBase64url(envelope);
  version.owner_wrap = encodeBase64url(wrap);
  if (ownerSig === "drop") version.owner_sig = null;
}

test("secret get refuses a value the server forged with the owner's public key", async () => {
  await forgeValue("keep");
  const run = await f.cli(["secret", "get", "api-key"]);
  assert.equal(run.code, 1);
  assert.equal(run.io.out(), "", "nothing forged reaches stdout");
  assert.match(run.io.err(), /not signed by this owner; it may have been forged by the server/);
});

test("a forged value is not granted onward: grant add wraps nothing", async () => {
  await forgeValue("keep");
  const run = await f.cli(["grant", "add", "bot", "api-key"]);
  assert.equal(run.code, 1);
  assert.deepEqual(uploads(), []);
});

test("secret set sends owner_sig, and the server keeps and returns it", async () => {
  const put = await f.cli(["secret", "set", "api-key"], { stdin: "second" });
  assert.equal(put.code, 0, put.io.err());
  const request = f.fake.requests.find((r) => r.method === "PUT");
  const sent = (request?.body as { owner_sig?: unknown } | undefined)?.owner_sig;
  assert.equal(typeof sent, "string");
  assert.equal((f.fake.secrets.get("api-key") as FakeSecret).versions.at(-1)?.owner_sig, sent);
  assert.equal((await f.cli(["secret", "get", "api-key"])).io.out(), "second");
});

test("secret get refuses a forged value whose owner_sig the server dropped", async () => {
  await forgeValue("drop");
  const run = await f.cli(["secret", "get", "api-key"]);
  assert.equal(run.code, 1);
  assert.equal(run.io.out(), "");
  assert.match(run.io.err(), /carries no owner signature/);
});

test("secret get refuses the owner's own value when owner_sig is null, missing or wrong", async () => {
  const version = (f.fake.secrets.get("api-key") as FakeSecret).versions[0];
  assert.ok(version);
  const genuine = version.owner_sig;
  const cases: [string | null | undefined, RegExp][] = [
    [null, /carries no owner signature/],
    [undefined, /malformed \(owner_sig\)/],
    ["not base64!", /malformed \(owner_sig\)/],
    [encodeBase64url(randomBytes(63)), /malformed \(owner_sig\)/],
    [encodeBase64url(randomBytes(64)), /not signed by this owner/],
  ];
  for (const [sig, message] of cases) {
    if (sig === undefined) delete version.owner_sig;
    else version.owner_sig = sig;
    const run = await f.cli(["secret", "get", "api-key"]);
    assert.equal(run.code, 1, String(sig));
    assert.equal(run.io.out(), "", "nothing reaches stdout");
    assert.match(run.io.err(), message);
    const grant = await f.cli(["grant", "add", "bot", "api-key"]);
    assert.equal(grant.code, 1);
  }
  assert.deepEqual(uploads(), []);
  version.owner_sig = genuine ?? null;
  assert.equal((await f.cli(["secret", "get", "api-key"])).io.out(), "real value");
});

test("secret set refuses to write over a current version without owner_sig, uploading nothing", async () => {
  const secret = f.fake.secrets.get("api-key") as FakeSecret;
  (secret.versions[0] as FakeSecret["versions"][number]).owner_sig = null;
  assert.equal((await f.cli(["secret", "get", "api-key"])).code, 1);
  const set = await f.cli(["secret", "set", "api-key"], { stdin: "re-set" });
  assert.equal(set.code, 1);
  assert.match(set.io.err(), /no owner signature/);
  assert.deepEqual(uploads(), []);
});

test("secret set refuses a server that answers for one name with another secret's id", async () => {
  // Without this check the value meant for api-key would be wrapped for db's grantees.
  assert.equal((await f.cli(["secret", "set", "db"], { stdin: "db value" })).code, 0);
  f.fake.requests.length = 0;
  const db = f.fake.secrets.get("db") as FakeSecret;
  f.fake.secrets.set("api-key", { ...db, name: "api-key" });
  const set = await f.cli(["secret", "set", "api-key"], { stdin: "meant for api-key" });
  assert.equal(set.code, 1);
  assert.match(set.io.err(), /not signed by this owner/);
  assert.deepEqual(uploads(), []);
});

test("a version lower than one already seen is refused as a rollback", async () => {
  assert.equal((await f.cli(["secret", "set", "api-key"], { stdin: "second" })).code, 0);
  f.fake.requests.length = 0;
  const secret = f.fake.secrets.get("api-key") as FakeSecret;
  assert.equal((await readConfig(f.home)).versions[secret.id], 2, "the version is pinned on disk");
  secret.versions.pop();
  const get = await f.cli(["secret", "get", "api-key"]);
  assert.equal(get.code, 1);
  assert.equal(get.io.out(), "");
  assert.match(get.io.err(), /served version 1 of a secret already seen at version 2/);
  const grant = await f.cli(["grant", "add", "bot", "api-key"]);
  assert.equal(grant.code, 1);
  const set = await f.cli(["secret", "set", "api-key"], { stdin: "third" });
  assert.equal(set.code, 1);
  assert.deepEqual(uploads(), []);
});

test("secret rm forgets the pin, so a new secret of the same name starts again at 1", async () => {
  const id = f.fake.secrets.get("api-key")?.id ?? "";
  assert.equal((await readConfig(f.home)).versions[id], 1);
  const rm = await f.cli(["secret", "rm", "api-key"]);
  assert.equal(rm.code, 0, rm.io.err());
  assert.equal((await readConfig(f.home)).versions[id], undefined);
  assert.equal((await f.cli(["secret", "set", "api-key"], { stdin: "again" })).code, 0);
  assert.equal((await f.cli(["secret", "get", "api-key"])).io.out(), "again");
});
