import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AgentSecretResponse, type AuditEntryView, decodeBase64url } from "@keyhole/core";
import Database from "better-sqlite3";
import type { Store } from "./store/store.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { agentGet, canary, fetchAndOpen, type TestAgent, TestOwner } from "./test-support/owner.js";

function countRows(dbPath: string, sql: string, ...params: unknown[]): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare(sql).get(...params) as { n: number }).n;
  } finally {
    db.close();
  }
}

describe("revocation (SECURITY-TESTS #15)", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;
  let wrap: Uint8Array;

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    await owner.putSecret("api", canary());
    agent = await owner.createAgent("doomed", ["db", "api"]);
    const { res } = await fetchAndOpen(t.url, agent, "db");
    wrap = decodeBase64url((res.json as AgentSecretResponse).wrap);
  });
  after(() => t.close());

  it("after revoke, the agent's next request is 401", async () => {
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 200);
    assert.equal((await owner.request("POST", "/v1/owner/agents/doomed/revoke")).status, 200);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 401);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/db")).status, 401);
  });

  it("leaves no wrap, grant or verifier of the agent in the database file", () => {
    assert.equal(
      countRows(t.dbPath, "SELECT COUNT(*) AS n FROM grants WHERE agent_id = ?", agent.id),
      0,
    );
    assert.equal(
      countRows(t.dbPath, "SELECT COUNT(*) AS n FROM agent_tokens WHERE agent_id = ?", agent.id),
      0,
    );
    assert.equal(
      countRows(t.dbPath, "SELECT COUNT(*) AS n FROM grants WHERE wrap = ?", Buffer.from(wrap)),
      0,
    );
    assert.equal(
      countRows(
        t.dbPath,
        "SELECT COUNT(*) AS n FROM agents WHERE id = ? AND revoked_at IS NOT NULL",
        agent.id,
      ),
      1,
    );
  });

  it("writes an agent.revoke audit entry", async () => {
    const res = await owner.request("GET", "/v1/owner/audit?agent=doomed");
    const entries = (res.json as { entries: AuditEntryView[] }).entries;
    const revoke = entries.filter((e) => e.action === "agent.revoke");
    assert.equal(revoke.length, 1);
    assert.deepEqual(
      [revoke[0]?.result, revoke[0]?.actor_type, revoke[0]?.agent_id],
      ["ok", "owner", agent.id],
    );
  });

  it("a rotate makes the old token 401 and the new one work, removing the old verifier", async () => {
    const live = await owner.createAgent("rotated", ["db"]);
    const { agent: next, res } = await owner.rotateAgent(live, ["db"]);
    assert.equal(res.status, 200);
    assert.equal((await agentGet(t.url, live, "/v1/agent/self")).status, 401);
    assert.equal((await agentGet(t.url, next, "/v1/agent/self")).status, 200);
    assert.equal(
      countRows(
        t.dbPath,
        "SELECT COUNT(*) AS n FROM agent_tokens WHERE token_id = ?",
        Buffer.from(live.tokenId),
      ),
      0,
    );
    assert.equal(
      countRows(
        t.dbPath,
        "SELECT COUNT(*) AS n FROM agent_tokens WHERE token_id = ?",
        Buffer.from(next.tokenId),
      ),
      1,
    );
  });
});

describe("revocation racing an in-flight fetch", () => {
  let t: TestServer;
  let owner: TestOwner;
  let release: () => void = () => {};
  let arrived: () => void = () => {};
  let hold = false;

  before(async () => {
    t = await startTestServer({
      // Hold the fetch after authentication, just before its store transaction.
      wrapStore: (store: Store): Store =>
        new Proxy(store, {
          get(target, prop, receiver) {
            const value = Reflect.get(target, prop, receiver);
            if (prop !== "getSecretForAgent" || typeof value !== "function") {
              return typeof value === "function" ? value.bind(target) : value;
            }
            return async (...args: unknown[]) => {
              if (hold) {
                arrived();
                await new Promise<void>((resolve) => {
                  release = resolve;
                });
              }
              return (value as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        }),
    });
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
  });
  after(() => t.close());

  it("a fetch authenticated before the revoke but reading after it fails with 401 and no value", async () => {
    const agent = await owner.createAgent("racer", ["db"]);
    hold = true;
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const inFlight = agentGet(t.url, agent, "/v1/agent/secrets/db");
    await reached;
    hold = false;
    assert.equal((await owner.request("POST", "/v1/owner/agents/racer/revoke")).status, 200);
    release();
    const res = await inFlight;
    assert.equal(res.status, 401);
    assert.equal(res.text.includes("value"), false);
  });

  it("the agent_token_gone entry names the agent even after junk from the same address", async () => {
    const agent = await owner.createAgent("racer2", ["db"]);
    // A fresh throttle interval, then junk from this address takes the address's slot.
    t.clock.advance(60_000);
    const junk = await agentGet(t.url, { header: "Keyhole junk" }, "/v1/agent/self");
    assert.equal(junk.status, 401);
    hold = true;
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const inFlight = agentGet(t.url, agent, "/v1/agent/secrets/db");
    await reached;
    hold = false;
    assert.equal((await owner.request("POST", "/v1/owner/agents/racer2/revoke")).status, 200);
    release();
    assert.equal((await inFlight).status, 401);
    const audit = await owner.request("GET", "/v1/owner/audit");
    const entries = (audit.json as { entries: AuditEntryView[] }).entries;
    const gone = entries.filter(
      (e) => e.action === "auth.failed" && e.detail.includes("agent_token_gone"),
    );
    assert.ok(
      gone.some((e) => e.agent_id === agent.id),
      `no agent_token_gone entry names ${agent.id}: ${JSON.stringify(gone)}`,
    );
    assert.ok(
      entries.some(
        (e) => e.action === "auth.failed" && e.agent_id === "" && e.detail.includes("malformed"),
      ),
      "the junk request wrote its own entry first",
    );
  });
});
