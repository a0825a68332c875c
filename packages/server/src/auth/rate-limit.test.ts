import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AuditEntryView, formatAgentAuthorization } from "@keyhole/core";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call, errorCode, type HttpResult } from "../test-support/http.js";
import { agentGet, canary, type TestAgent, TestOwner } from "../test-support/owner.js";
import { DEFAULT_LIMITS, FailureLimiter, retryAfterSeconds } from "./rate-limit.js";

describe("FailureLimiter", () => {
  it("blocks after more than maxFailures in the window, for baseBlockMs", () => {
    const limiter = new FailureLimiter();
    for (let i = 0; i < 10; i++) assert.equal(limiter.recordFailure("k", 1000 + i), 0);
    assert.equal(limiter.recordFailure("k", 1010), 60_000);
    assert.equal(limiter.blockedFor("k", 1010 + 59_999), 1);
    assert.equal(limiter.blockedFor("k", 1010 + 60_000), 0);
    assert.equal(limiter.blockedFor("other", 1010), 0);
  });

  it("forgets failures older than the window", () => {
    const limiter = new FailureLimiter();
    for (let i = 0; i < 10; i++) limiter.recordFailure("k", i);
    assert.equal(limiter.recordFailure("k", 60_000), 0, "the first failure left the window");
  });

  it("doubles the block on each repeat, up to maxBlockMs, and resets after a quiet period", () => {
    const limiter = new FailureLimiter({ ...DEFAULT_LIMITS, maxFailures: 1, maxBlockMs: 200_000 });
    let t = 0;
    const strike = () => {
      limiter.recordFailure("k", t);
      const block = limiter.recordFailure("k", t);
      t += block;
      return block;
    };
    assert.deepEqual([strike(), strike(), strike(), strike()], [60_000, 120_000, 200_000, 200_000]);
    t += DEFAULT_LIMITS.quietMs + 1;
    assert.equal(strike(), 60_000);
  });

  it("keeps at most maxKeys keys, forgetting the least recently failing", () => {
    const limiter = new FailureLimiter({ ...DEFAULT_LIMITS, maxFailures: 0, maxKeys: 2 });
    limiter.recordFailure("a", 0);
    limiter.recordFailure("b", 0);
    limiter.recordFailure("c", 0);
    assert.equal(limiter.blockedFor("a", 1), 0);
    assert.ok(limiter.blockedFor("b", 1) > 0);
    assert.ok(limiter.blockedFor("c", 1) > 0);
  });

  it("rounds retry-after up to whole seconds, at least 1", () => {
    assert.equal(retryAfterSeconds(1), 1);
    assert.equal(retryAfterSeconds(60_000), 60);
    assert.equal(retryAfterSeconds(60_001), 61);
  });
});

describe("failed authentication over HTTP (SECURITY-TESTS #13)", () => {
  let t: TestServer;
  let owner: TestOwner;
  let victim: TestAgent;
  let bystander: TestAgent;

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("s", canary());
    victim = await owner.createAgent("victim", ["s"]);
    bystander = await owner.createAgent("bystander", ["s"]);
  });
  after(() => t.close());

  const wrongKey = (agent: TestAgent): Promise<HttpResult> =>
    call(t.url, {
      method: "GET",
      path: "/v1/agent/self",
      headers: { authorization: formatAgentAuthorization(agent.tokenId, canary(32)) },
    });

  it("answers 429 with retry-after once a token id has failed more than 10 times in 60 s", async () => {
    for (let i = 0; i < 10; i++) assert.equal((await wrongKey(victim)).status, 401);
    const limited = await wrongKey(victim);
    assert.equal(limited.status, 429);
    assert.equal(errorCode(limited), "rate_limited");
    assert.equal(limited.headers["retry-after"], "60");
  });

  it("does not lock out the legitimate agent presenting its valid key", async () => {
    assert.equal((await agentGet(t.url, victim, "/v1/agent/secrets/s")).status, 200);
  });

  it("does not lock out another agent at the same address", async () => {
    assert.equal((await agentGet(t.url, bystander, "/v1/agent/secrets/s")).status, 200);
  });

  it("answers further failures from the blocked address with 429, whatever the credential", async () => {
    assert.equal((await wrongKey(bystander)).status, 429);
    assert.equal((await call(t.url, { method: "GET", path: "/v1/agent/self" })).status, 429);
    const garbage = await call(t.url, {
      method: "GET",
      path: "/v1/agent/self",
      headers: { authorization: "Basic eA==" },
    });
    assert.equal(garbage.status, 429);
    assert.ok(Number(garbage.headers["retry-after"]) >= 1);
  });

  it("lets the owner through from a blocked address", async () => {
    assert.equal((await owner.request("GET", "/v1/owner/agents")).status, 200);
  });

  it("lifts the block after retry-after, and doubles it on the next flood", async () => {
    t.clock.advance(60_000);
    assert.equal((await wrongKey(victim)).status, 401);
    for (let i = 0; i < 9; i++) await wrongKey(victim);
    const limited = await wrongKey(victim);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers["retry-after"], "120");
  });

  it("writes at most one auth.failed entry per source and token id per second, counting the rest", async () => {
    const res = await owner.request("GET", "/v1/owner/audit?limit=1000");
    const failed = (res.json as { entries: AuditEntryView[] }).entries.filter(
      (e) => e.action === "auth.failed",
    );
    // Two bursts against the victim, each within one clock instant: one entry each, the second
    // reporting the first's rest. The bystander's token id and the anonymous failures of the
    // same address have entries of their own, so none of them hides the victim's.
    assert.deepEqual(
      failed.map((e) => [e.agent_id, e.detail]),
      [
        [victim.id, "reason=agent_bad_key bad_keys=1"],
        [bystander.id, "reason=agent_bad_key bad_keys=1"],
        ["", "reason=no_credentials"],
        [victim.id, "reason=agent_bad_key bad_keys=12 likely_leak suppressed=10"],
      ],
    );
  });
});

describe("the bootstrap code under a flood", () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it("refuses even the right code from a blocked source, and accepts it once the block ends", async () => {
    const owner = await TestOwner.create(t.url, t.clock.now);
    for (let i = 0; i < 10; i++) assert.equal((await owner.init(`guess-${i}`)).status, 401);
    assert.equal((await owner.init("guess-10")).status, 429);
    const right = await owner.init(t.server.bootstrapCode ?? "");
    assert.equal(right.status, 429);
    t.clock.advance(60_000);
    assert.equal((await owner.init(t.server.bootstrapCode ?? "")).status, 200);
  });
});

describe("X-Forwarded-For is not trusted", () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it("rotating forwarded addresses does not escape the per-address limit or change the audit address", async () => {
    const attempt = (i: number) =>
      call(t.url, {
        method: "GET",
        path: "/v1/agent/self",
        headers: { authorization: "Keyhole nope", "x-forwarded-for": `203.0.113.${i}` },
      });
    for (let i = 0; i < 10; i++) assert.equal((await attempt(i)).status, 401);
    assert.equal((await attempt(10)).status, 429);
    t.clock.advance(60_000); // the block also holds the bootstrap code back
    const owner = await TestOwner.initialized(t);
    const res = await owner.request("GET", "/v1/owner/audit");
    const entries = (res.json as { entries: AuditEntryView[] }).entries;
    assert.ok(entries.length > 0);
    assert.ok(entries.every((e) => e.client_ip === "127.0.0.1"));
  });
});
