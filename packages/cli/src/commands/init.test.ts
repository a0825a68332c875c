import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runCli } from "../cli.js";
import { type FakeServer, startFakeServer } from "../test-support/fake-server.js";
import { memoryIo } from "../test-support/memory-io.js";

let fake: FakeServer;
let dir: string;
before(async () => {
  fake = await startFakeServer();
  dir = await mkdtemp(join(tmpdir(), "keyhole-init-"));
});
after(async () => {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

function env(home: string) {
  return {
    KEYHOLE_HOME: join(dir, home),
    KEYHOLE_ADDR: fake.url,
    KEYHOLE_TEST: "1",
    KEYHOLE_TEST_ARGON2_FAST: "1",
  };
}

test("mismatched passphrases abort init before anything is written", async () => {
  const io = memoryIo({
    env: env("a"),
    keystrokes: [`${fake.bootstrapCode}\r`, "first passphrase\r", "other passphrase\r"],
  });
  assert.equal(await runCli(["init"], io), 2);
  assert.equal(io.err(), "keyhole: the passphrases do not match\n");
  await assert.rejects(stat(join(dir, "a")));
});

test("a short passphrase is refused", async () => {
  const io = memoryIo({
    env: { ...env("b"), KEYHOLE_PASSPHRASE: "short", KEYHOLE_BOOTSTRAP_CODE: fake.bootstrapCode },
  });
  assert.equal(await runCli(["init"], io), 2);
  assert.match(io.err(), /at least 8 characters/);
});

test("init asks for the bootstrap code and the passphrase twice on muted prompts", async () => {
  const io = memoryIo({
    env: env("c"),
    keystrokes: [`${fake.bootstrapCode}\r`, "long enough passphrase\r", "long enough passphrase\r"],
  });
  assert.equal(await runCli(["init"], io), 0, io.err());
  assert.equal(io.terminalOutput(), "Bootstrap code: \nOwner passphrase: \nRepeat passphrase: \n");
  assert.ok(!io.err().includes("long enough passphrase"));
  const config = JSON.parse(await readFile(join(dir, "c", "config.json"), "utf8")) as {
    vault_id: string;
    addr: string;
  };
  assert.equal(config.vault_id, fake.vaultId);
  assert.equal(config.addr, fake.url);
  const session = memoryIo({ env: env("c"), keystrokes: ["long enough passphrase\r"] });
  assert.equal(await runCli(["secret", "list"], session), 0, session.err());
});

test("init against a claimed server fails before asking anything", async () => {
  const io = memoryIo({ env: env("d"), keystrokes: [] });
  assert.equal(await runCli(["init"], io), 1);
  assert.match(io.err(), /already has an owner/);
  assert.equal(io.terminalOutput(), "");
});
