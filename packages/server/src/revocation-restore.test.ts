// SECURITY-TESTS #15, last sentence: a restored pre-revocation backup does not bring the token
// back. The procedure followed is SECURITY.md's "Backups and revocation": back up keyhole.db,
// keep `revoked-tokens` with the server, never restore it from an older copy.
import assert from "node:assert/strict";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type AuditEntryView, formatAgentAuthorization, isKeyholeError } from "@keyhole/core";
import Database from "better-sqlite3";
import { startServer } from "./server.js";
import { startTestServer, TestClock, type TestServer } from "./test-support/harness.js";
import { call } from "./test-support/http.js";
import { agentGet, canary, type TestAgent, TestOwner } from "./test-support/owner.js";

const DB_FILES = ["keyhole.db", "keyhole.db-wal", "keyhole.db-shm"];
const hex = (id: Uint8Array) => Buffer.from(id).toString("hex");

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "keyhole-restore-"));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A cold copy of the database files (the server is stopped). */
function copyDb(from: string, to: string): void {
  for (const name of DB_FILES) {
    rmSync(join(to, name), { force: true });
    if (existsSync(join(from, name))) copyFileSync(join(from, name), join(to, name));
  }
}

function self(t: TestServer, agent: Pick<TestAgent, "header">): Promise<number> {
  return agentGet(t.url, agent, "/v1/agent/self").then((r) => r.status);
}

describe("revocation survives a database restore (SECURITY-TESTS #15)", () => {
  const clock = new TestClock();
  const dataDir = tempDir();
  const backup = tempDir();
  let t: TestServer;
  let owner: TestOwner;
  let revoked: TestAgent;
  let rotated: TestAgent;
  let replacement: TestAgent;
  after(() => t.close());

  const restart = async () => {
    await t.close({ keepDir: true });
    t = await startTestServer({ dataDir, clock });
    owner.url = t.url;
  };

  it("a revoked token and a rotated-out token stay dead after the old database is put back", async () => {
    t = await startTestServer({ dataDir, clock });
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    revoked = await owner.createAgent("doomed", ["db"]);
    rotated = await owner.createAgent("rotated", ["db"]);
    assert.equal(await self(t, revoked), 200);
    assert.equal(await self(t, rotated), 200);

    // Cold backup, then revoke one agent and rotate the other.
    await t.close({ keepDir: true });
    copyDb(dataDir, backup);
    t = await startTestServer({ dataDir, clock });
    owner.url = t.url;
    assert.equal((await owner.request("POST", "/v1/owner/agents/doomed/revoke")).status, 200);
    const rotation = await owner.rotateAgent(rotated, ["db"]);
    assert.equal(rotation.res.status, 200);
    replacement = rotation.agent;
    assert.equal(await self(t, revoked), 401);
    assert.equal(await self(t, rotated), 401);
    assert.equal(await self(t, replacement), 200);
    const list = readFileSync(join(dataDir, "revoked-tokens"), "utf8");
    assert.equal(list, `${hex(revoked.tokenId)}\n${hex(rotated.tokenId)}\n`);

    // Restore the old database; `revoked-tokens` stays as it is.
    await t.close({ keepDir: true });
    copyDb(backup, dataDir);
    t = await startTestServer({ dataDir, clock });
    owner.url = t.url;
    const db = new Database(join(dataDir, "keyhole.db"), { readonly: true });
    try {
      const live = db.prepare("SELECT COUNT(*) AS n FROM agent_tokens").get() as { n: number };
      assert.equal(live.n, 2, "the restored database holds both old verifiers again");
    } finally {
      db.close();
    }
    assert.equal(await self(t, revoked), 401);
    assert.equal(await self(t, rotated), 401);
    const secret = await agentGet(t.url, revoked, "/v1/agent/secrets/db");
    assert.equal(secret.status, 401);
    assert.equal(secret.text.includes("value"), false);
  });

  it("answers a listed token exactly like an unknown one", async () => {
    const listed = await agentGet(t.url, revoked, "/v1/agent/secrets/db");
    const unknown = await call(t.url, {
      method: "GET",
      path: "/v1/agent/secrets/db",
      headers: { authorization: formatAgentAuthorization(canary(16), canary(32)) },
    });
    assert.equal(listed.status, unknown.status);
    assert.equal(listed.text, unknown.text);
  });

  it("records the refusals as auth.failed with reason agent_retired and warns at start-up", async () => {
    await restart();
    const audit = await owner.request("GET", "/v1/owner/audit?limit=1000");
    const entries = (audit.json as { entries: AuditEntryView[] }).entries;
    const retired = entries.filter(
      (e) => e.action === "auth.failed" && e.detail.startsWith("reason=agent_retired"),
    );
    assert.ok(retired.length > 0);
    assert.equal(retired[0]?.agent_id, revoked.id);
    const warnings = t.logs.filter((line) => line.includes("on the revoked list"));
    assert.deepEqual(
      warnings.map((line) => (JSON.parse(line) as { agent_id: string }).agent_id).sort(),
      [revoked.id, rotated.id].sort(),
    );
    // Revoking again brings the database back in line; the warning goes away.
    assert.equal((await owner.request("POST", "/v1/owner/agents/doomed/revoke")).status, 200);
    assert.equal((await owner.request("POST", "/v1/owner/agents/rotated/revoke")).status, 200);
    await restart();
    assert.deepEqual(
      t.logs.filter((line) => line.includes("on the revoked list")),
      [],
    );
    assert.equal(
      readFileSync(join(dataDir, "revoked-tokens"), "utf8"),
      `${hex(revoked.tokenId)}\n${hex(rotated.tokenId)}\n`,
      "ids already listed are not appended twice",
    );
  });
});

describe("revoked-tokens at start-up", () => {
  it("re-adds a retired token id the database has but the file lost (crash before the append)", async () => {
    const clock = new TestClock();
    const dataDir = tempDir();
    let t = await startTestServer({ dataDir, clock });
    const owner = await TestOwner.initialized(t);
    const agent = await owner.createAgent("crashy");
    assert.equal((await owner.request("POST", "/v1/owner/agents/crashy/revoke")).status, 200);
    await t.close({ keepDir: true });
    const file = join(dataDir, "revoked-tokens");
    // As if the server died after the commit and before the append.
    writeFileSync(file, "");
    t = await startTestServer({ dataDir, clock });
    try {
      assert.equal(readFileSync(file, "utf8"), `${hex(agent.tokenId)}\n`);
      assert.ok(t.logs.some((line) => line.includes("re-added to revoked-tokens")));
      assert.equal(await self(t, agent), 401);
    } finally {
      await t.close();
    }
  });

  it("refuses to start when an initialised vault's file is missing, unless allowed", async () => {
    const clock = new TestClock();
    const dataDir = tempDir();
    let t = await startTestServer({ dataDir, clock });
    const owner = await TestOwner.initialized(t);
    const agent = await owner.createAgent("lost");
    assert.equal((await owner.request("POST", "/v1/owner/agents/lost/revoke")).status, 200);
    await t.close({ keepDir: true });
    const file = join(dataDir, "revoked-tokens");
    // As after a migration that copied only keyhole.db and pepper.
    rmSync(file);
    await assert.rejects(
      startTestServer({ dataDir, clock }),
      (error: unknown) =>
        isKeyholeError(error) &&
        error.code === "config_error" &&
        error.message.includes("revoked-tokens is missing but the vault is initialised") &&
        error.message.includes("--allow-missing-revocations"),
    );
    assert.equal(existsSync(file), false, "a refused start leaves no empty file behind");
    await assert.rejects(
      startTestServer({ dataDir, clock, allowMissingRevocations: false }),
      (error: unknown) => isKeyholeError(error) && error.code === "config_error",
    );

    t = await startTestServer({ dataDir, clock, allowMissingRevocations: true });
    try {
      assert.equal(readFileSync(file, "utf8"), `${hex(agent.tokenId)}\n`);
      assert.ok(
        t.logs.some(
          (line) =>
            line.includes('"level":"error"') &&
            line.includes("revoked-tokens was missing and has been re-created"),
        ),
      );
      assert.equal(await self(t, agent), 401);
    } finally {
      await t.close({ keepDir: true });
    }
    // The file now exists: later starts need no flag, and warn no more.
    t = await startTestServer({ dataDir, clock });
    try {
      assert.equal(
        t.logs.some((line) => line.includes("revoked-tokens was missing")),
        false,
      );
    } finally {
      await t.close();
    }
  });

  it("creates the file for a vault with no owner yet, without a warning", async () => {
    const dataDir = tempDir();
    const file = join(dataDir, "revoked-tokens");
    let t = await startTestServer({ dataDir });
    await t.close({ keepDir: true });
    assert.equal(readFileSync(file, "utf8"), "");
    // Still uninitialised: losing the file again is harmless, as nothing was ever revoked.
    rmSync(file);
    t = await startTestServer({ dataDir });
    try {
      assert.equal(readFileSync(file, "utf8"), "");
      assert.equal(
        t.logs.some((line) => line.includes("revoked-tokens was missing")),
        false,
      );
    } finally {
      await t.close();
    }
  });

  it("refuses to start on a garbled line, and on a file group or others can read", async () => {
    const dataDir = tempDir();
    const first = await startServer({ dataDir, port: 0, logLevel: "silent" });
    await first.close();
    const file = join(dataDir, "revoked-tokens");
    writeFileSync(file, `${hex(canary(16))}\nzz-not-hex\n`);
    await assert.rejects(
      startServer({ dataDir, port: 0, logLevel: "silent" }),
      (error: unknown) =>
        isKeyholeError(error) &&
        error.code === "config_error" &&
        error.message.includes("revoked-tokens line 2 is not a token id"),
    );
    writeFileSync(file, "");
    chmodSync(file, 0o644);
    await assert.rejects(
      startServer({ dataDir, port: 0, logLevel: "silent" }),
      (error: unknown) =>
        isKeyholeError(error) && error.code === "config_error" && /chmod 600/.test(error.message),
    );
    chmodSync(file, 0o600);
    const again = await startServer({ dataDir, port: 0, logLevel: "silent" });
    await again.close();
  });
});
