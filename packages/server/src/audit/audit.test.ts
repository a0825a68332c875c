import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  AUDIT_GENESIS,
  type AuditEntryView,
  auditFieldsFromView,
  type CheckpointView,
  chainAuditHash,
  decodeBase64url,
  encodeBase64url,
  formatAgentAuthorization,
} from "@keyhole/core";
import Database from "better-sqlite3";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call, type HttpResult } from "../test-support/http.js";
import {
  agentGet,
  canary,
  fetchAndOpen,
  type TestAgent,
  TestOwner,
} from "../test-support/owner.js";
import { sha256Sync } from "./sha256.js";
import { verifyAgainstCheckpoint, verifyAuditChain, verifyCheckpoint } from "./verify.js";

describe("audit: every attempt yields exactly one entry (SECURITY-TESTS #18)", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    await owner.putSecret("other", canary());
    agent = await owner.createAgent("ci", ["db"]);
  });
  after(() => t.close());

  async function expectOneEntry(
    attempt: () => Promise<HttpResult>,
    status: number,
    expected: Partial<AuditEntryView>,
  ): Promise<void> {
    const before = (await owner.auditEntries()).length;
    // Failed authentication is throttled per second: step past it so each attempt is written.
    t.clock.advance(1000);
    const res = await attempt();
    assert.equal(res.status, status, res.text);
    const added = (await owner.auditEntries()).slice(before);
    assert.equal(added.length, 1, JSON.stringify(added));
    for (const [key, value] of Object.entries(expected)) {
      assert.equal(added[0]?.[key as keyof AuditEntryView], value, key);
    }
  }

  it("a successful fetch", () =>
    expectOneEntry(() => agentGet(t.url, agent, "/v1/agent/secrets/db"), 200, {
      action: "secret.read",
      result: "ok",
      actor_type: "agent",
      actor_id: agent.id,
      agent_id: agent.id,
      secret_version: 1,
    }));

  it("a fetch of a secret not granted", () =>
    expectOneEntry(() => agentGet(t.url, agent, "/v1/agent/secrets/other"), 404, {
      action: "secret.read",
      result: "denied",
    }));

  it("a fetch of a secret that does not exist", () =>
    expectOneEntry(() => agentGet(t.url, agent, "/v1/agent/secrets/ghost"), 404, {
      action: "secret.read",
      result: "not_found",
      detail: "name=ghost",
    }));

  it("a malformed fetch by an authenticated agent", () =>
    expectOneEntry(() => agentGet(t.url, agent, "/v1/agent/secrets/.bad"), 400, {
      action: "secret.read",
      result: "denied",
      detail: "bad_request",
    }));

  it("a failed authentication", () =>
    expectOneEntry(
      () =>
        call(t.url, {
          method: "GET",
          path: "/v1/agent/self",
          headers: { authorization: formatAgentAuthorization(agent.tokenId, canary(32)) },
        }),
      401,
      {
        action: "auth.failed",
        result: "unauthenticated",
        actor_type: "anonymous",
        agent_id: agent.id,
      },
    ));

  it("a refusal by role", () =>
    expectOneEntry(
      () =>
        call(t.url, {
          method: "GET",
          path: "/v1/owner/agents",
          headers: { authorization: agent.header },
        }),
      403,
      {
        action: "auth.failed",
        result: "denied",
        actor_type: "agent",
      },
    ));

  it("an owner write that loses a version race", async () => {
    const stale = await owner.secretPutBody("db", canary());
    await owner.putSecret("db", canary());
    await expectOneEntry(() => owner.request("PUT", "/v1/owner/secrets/db", stale), 409, {
      action: "secret.write",
      result: "conflict",
      actor_type: "owner",
    });
  });

  it("an owner write with a malformed body", () =>
    expectOneEntry(() => owner.request("POST", "/v1/owner/grants", { nope: true }), 400, {
      action: "grant.add",
      result: "denied",
    }));

  it("an owner action on something that does not exist", () =>
    expectOneEntry(() => owner.request("DELETE", "/v1/owner/grants/ci/ghost"), 404, {
      action: "grant.remove",
      result: "not_found",
    }));
});

describe("audit: fail closed when the audit write fails", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;
  const value = canary();

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", value);
    agent = await owner.createAgent("ci", ["db"]);
  });
  after(() => t.close());

  it("answers 500 with no ciphertext and changes nothing", async () => {
    const put = await owner.secretPutBody("db", canary());
    const before = await owner.auditEntries();
    t.auditFault.fail = true;
    let fetched: HttpResult;
    let written: HttpResult;
    let revoked: HttpResult;
    let failedAuth: HttpResult;
    try {
      fetched = await agentGet(t.url, agent, "/v1/agent/secrets/db");
      written = await owner.request("PUT", "/v1/owner/secrets/db", put);
      revoked = await owner.request("POST", "/v1/owner/agents/ci/revoke");
      failedAuth = await call(t.url, {
        method: "GET",
        path: "/v1/agent/self",
        headers: { authorization: "Keyhole x.y" },
      });
    } finally {
      t.auditFault.fail = false;
    }
    for (const res of [fetched, written, revoked, failedAuth]) {
      assert.equal(res.status, 500);
      assert.deepEqual(res.json, { error: { code: "internal", message: "internal error" } });
    }
    assert.equal(fetched.text.includes("KHS1"), false);
    assert.deepEqual(await owner.auditEntries(), before);
    assert.equal((await owner.openSecret("db")).version, 1);
    assert.deepEqual(
      (await fetchAndOpen(t.url, agent, "db")).value,
      value,
      "the revoke did not happen",
    );
    assert.ok(
      t.logs.some((l) => l.includes('"msg":"unexpected error"') && l.includes('"error":"Error"')),
    );
    assert.equal(
      t.logs.some((l) => l.includes("injected audit failure")),
      false,
      "error messages are not logged",
    );
  });
});

describe("audit: the chain and its checkpoints", () => {
  let t: TestServer;
  let owner: TestOwner;
  let pinned: CheckpointView;
  let auditPk: Uint8Array;
  const copies: string[] = [];

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    const agent = await owner.createAgent("ci", ["db"]);
    for (let i = 0; i < 3; i++) await fetchAndOpen(t.url, agent, "db");
    pinned = (await owner.request("GET", "/v1/owner/audit/checkpoint")).json as CheckpointView;
    auditPk = decodeBase64url(
      ((await owner.request("GET", "/v1/info")).json as { audit_pk: string }).audit_pk,
    );
    await owner.request("GET", "/v1/owner/secrets/db");
    await t.close({ keepDir: true });
  });
  after(() => {
    rmSync(t.dataDir, { recursive: true, force: true });
    for (const dir of copies) rmSync(dir, { recursive: true, force: true });
  });

  /** Tampers with a copy of the database the way an attacker with the file would, then reads it back. */
  async function tampered(sql: string[]): Promise<AuditEntryView[]> {
    const dir = mkdtempSync(join(tmpdir(), "keyhole-tamper-"));
    copies.push(dir);
    cpSync(t.dataDir, dir, { recursive: true });
    const db = new Database(join(dir, "keyhole.db"));
    db.exec("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;");
    for (const statement of sql) db.exec(statement);
    db.close();
    const copy = await startTestServer({ dataDir: dir, clock: t.clock });
    owner.url = copy.url;
    try {
      return await owner.auditEntries();
    } finally {
      await copy.close({ keepDir: true });
    }
  }

  it("recomputes from the API entries with core's chainAuditHash to the signed checkpoint", async () => {
    const entries = await tampered([]);
    let head = AUDIT_GENESIS;
    for (const e of entries.slice(0, pinned.size)) {
      head = chainAuditHash(head, auditFieldsFromView(e), sha256Sync);
      assert.equal(e.hash, encodeBase64url(head));
    }
    assert.equal(pinned.head, encodeBase64url(head));
    assert.equal(verifyCheckpoint(pinned, auditPk), true);
    assert.equal(verifyCheckpoint(pinned, canary(32)), false);
    assert.equal(
      verifyCheckpoint({ ...pinned, head: encodeBase64url(canary(32)) }, auditPk),
      false,
    );
    const result = verifyAgainstCheckpoint(entries, pinned);
    assert.ok(result.ok);
    assert.equal(result.size, entries.length);
    assert.ok(entries.length > pinned.size);
  });

  it("detects an edited row", async () => {
    const entries = await tampered(["UPDATE audit SET detail = 'nothing to see' WHERE seq = 3"]);
    assert.deepEqual(verifyAuditChain(entries), { ok: false, seq: 3, reason: "hash_mismatch" });
    assert.equal(verifyAgainstCheckpoint(entries, pinned).ok, false);
  });

  it("detects a deleted row", async () => {
    const entries = await tampered(["DELETE FROM audit WHERE seq = 4"]);
    assert.deepEqual(verifyAuditChain(entries), { ok: false, seq: 4, reason: "sequence_gap" });
  });

  it("detects a deleted row renumbered to close the gap", async () => {
    const entries = await tampered([
      "DELETE FROM audit WHERE seq = 4",
      "UPDATE audit SET seq = seq - 1 WHERE seq > 4",
    ]);
    assert.deepEqual(verifyAuditChain(entries), { ok: false, seq: 4, reason: "hash_mismatch" });
  });

  it("detects two rows swapped", async () => {
    const entries = await tampered([
      "UPDATE audit SET seq = -5 WHERE seq = 5",
      "UPDATE audit SET seq = 5 WHERE seq = 6",
      "UPDATE audit SET seq = 6 WHERE seq = -5",
    ]);
    assert.equal(verifyAuditChain(entries).ok, false);
  });

  it("detects truncation against the pinned checkpoint", async () => {
    const entries = await tampered([`DELETE FROM audit WHERE seq >= ${pinned.size - 1}`]);
    assert.equal(verifyAuditChain(entries).ok, true, "a truncated chain is still a chain");
    assert.deepEqual(verifyAgainstCheckpoint(entries, pinned), { ok: false, reason: "log_shrank" });
  });

  it("detects a rewritten history with a recomputed chain", async () => {
    const entries = await tampered(["UPDATE audit SET detail = 'rewritten' WHERE seq = 2"]);
    // The attacker recomputes every hash after the edit; only the pinned checkpoint catches it.
    let head = AUDIT_GENESIS;
    const rehashed = entries.map((e) => {
      head = chainAuditHash(head, auditFieldsFromView(e), sha256Sync);
      return { ...e, hash: encodeBase64url(head) };
    });
    assert.equal(verifyAuditChain(rehashed).ok, true);
    assert.deepEqual(verifyAgainstCheckpoint(rehashed, pinned), {
      ok: false,
      reason: "history_rewritten",
    });
  });
});
