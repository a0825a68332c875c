import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AuditEntryView, formatAgentAuthorization } from "@keyhole/core";
import fc from "fast-check";
import type { AuditDraft, AuditRecord } from "../store/store.js";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call, type HttpResult } from "../test-support/http.js";
import { canary, type TestAgent, TestOwner } from "../test-support/owner.js";
import {
  DEFAULT_FAILED_AUTH_LIMITS,
  type FailedAttempt,
  type FailedAuthLimits,
  FailedAuthRecorder,
} from "./failed-auth.js";
import { DEFAULT_LIMITS } from "./rate-limit.js";

const BOT = "agt_BBBBBBBBBBBBBBBBBBBBBB";

function recorder(limits: Partial<FailedAuthLimits> = {}) {
  const rows: AuditDraft[] = [];
  const clock = { t: 1_000_000 };
  const store = {
    appendAudit: async (draft: AuditDraft) => {
      rows.push(draft);
      return {} as AuditRecord;
    },
  };
  return { rows, clock, failures: new FailedAuthRecorder(store, () => clock.t, limits) };
}

function attempt(source: string, over: Partial<FailedAttempt> = {}): FailedAttempt {
  return {
    requestId: `req-${source}`,
    clientIp: source,
    source,
    userAgent: "ua",
    reason: "agent_unknown_token",
    agentId: "",
    tokenKey: "unknowntokenid",
    ...over,
  };
}

const badKey = (source: string) =>
  attempt(source, { reason: "agent_bad_key", agentId: BOT, tokenKey: "bottokenid" });

/** How many failures an entry stands for: itself, when it has a request id, plus those held back. */
function represented(row: { requestId?: string; request_id?: string; detail: string }): number {
  const own = (row.requestId ?? row.request_id ?? "") === "" ? 0 : 1;
  return own + Number(/(?:^| )suppressed=(\d+)/.exec(row.detail)?.[1] ?? 0);
}

const countFor = (rows: readonly AuditDraft[], agentId: string) =>
  rows.filter((r) => r.agentId === agentId).reduce((n, r) => n + represented(r), 0);

describe("FailedAuthRecorder", () => {
  it("records wrong keys against an agent under its id though junk used the source's slot", async () => {
    const { rows, failures } = recorder();
    await failures.record(attempt("10.0.0.1"));
    for (let i = 0; i < 10; i++) await failures.record(badKey("10.0.0.1"));
    await failures.flush(true);
    const bot = rows.filter((r) => r.agentId === BOT);
    assert.deepEqual(
      bot.map((r) => r.detail),
      [
        "reason=agent_bad_key bad_keys=1",
        "reason=agent_bad_key bad_keys=10 likely_leak suppressed=9",
      ],
    );
    assert.equal(countFor(rows, BOT), 10);
    assert.equal(bot[0]?.requestId, "req-10.0.0.1");
    assert.equal(countFor(rows, ""), 1);
  });

  it("flags likely_leak once a valid token id has had leakThreshold wrong keys", async () => {
    const { rows, clock, failures } = recorder({ leakThreshold: 3 });
    for (let i = 0; i < 4; i++) {
      await failures.record(badKey(`10.0.0.${i}`));
      clock.t += 1;
    }
    assert.deepEqual(
      rows.map((r) => r.detail),
      [
        "reason=agent_bad_key bad_keys=1",
        "reason=agent_bad_key bad_keys=2",
        "reason=agent_bad_key bad_keys=3 likely_leak",
        "reason=agent_bad_key bad_keys=4 likely_leak",
      ],
    );
  });

  it("flags a valid token used from outside its ranges as a likely leak at once", async () => {
    const { rows, failures } = recorder();
    await failures.record(
      attempt("10.9.9.9", { reason: "agent_source_not_allowed", agentId: BOT }),
    );
    assert.equal(rows[0]?.detail, "reason=agent_source_not_allowed likely_leak");
    assert.equal(rows[0]?.agentId, BOT);
  });

  it("keeps held-back counts when writing them fails, and writes them on the next flush", async () => {
    const rows: AuditDraft[] = [];
    const clock = { t: 1_000_000 };
    let broken = false;
    const store = {
      appendAudit: async (draft: AuditDraft) => {
        if (broken) throw new Error("disk full");
        rows.push(draft);
        return {} as AuditRecord;
      },
    };
    const failures = new FailedAuthRecorder(store, () => clock.t, { maxEntriesPerInterval: 2 });
    for (let i = 0; i < 4; i++) await failures.record(badKey("10.0.0.1"));
    // Past the per-interval budget: these go to the agent's overflow count.
    for (let i = 0; i < 3; i++) await failures.record(badKey(`10.0.1.${i}`));
    clock.t += 2_000;
    broken = true;
    await assert.rejects(failures.flush(true), /disk full/);
    await assert.rejects(failures.flush(true), /disk full/);
    broken = false;
    await failures.flush(true);
    const total = rows.reduce((n, row) => n + represented(row), 0);
    assert.equal(total, 7, rows.map((r) => r.detail).join(" | "));
  });

  it("throttles per source: one entry a second, the rest counted into the next", async () => {
    const { rows, clock, failures } = recorder();
    for (let i = 0; i < 5; i++) await failures.record(attempt("10.0.0.1"));
    clock.t += 999;
    await failures.record(attempt("10.0.0.1"));
    assert.equal(rows.length, 1);
    clock.t += 1;
    await failures.record(attempt("10.0.0.1", { reason: "owner_bad_signature" }));
    assert.deepEqual(
      rows.map((r) => r.detail),
      ["reason=agent_unknown_token", "reason=owner_bad_signature suppressed=5"],
    );
  });

  it("writes a bounded number of rows under a flood of unknown ids from many sources", async () => {
    const { rows, clock, failures } = recorder();
    const perSecond = 20_000;
    const seconds = 3;
    for (let s = 0; s < seconds; s++) {
      for (let i = 0; i < perSecond; i++) {
        await failures.record(attempt(`2001:db8:${s}:${i.toString(16)}::/64`));
      }
      clock.t += 1000;
    }
    await failures.flush(true);
    const budget = DEFAULT_FAILED_AUTH_LIMITS.maxEntriesPerInterval;
    // Per interval: the keyed budget, plus one anonymous overflow entry.
    assert.ok(rows.length <= (seconds + 1) * (budget + 1), `${rows.length} rows`);
    assert.equal(countFor(rows, ""), seconds * perSecond, "every failure is counted");
    const overflow = rows.filter((r) => r.requestId === "" && /sources=/.test(r.detail));
    assert.ok(overflow.length >= seconds);
    assert.match(
      overflow[0]?.detail ?? "",
      /^reason=agent_unknown_token suppressed=\d+ sources=256\+$/,
    );
  });

  it("keeps counting a flood against one agent under its id, whatever the number of sources", async () => {
    const { rows, failures } = recorder({ maxKeys: 8, maxEntriesPerInterval: 4 });
    for (let i = 0; i < 1000; i++) await failures.record(badKey(`10.1.${i >> 8}.${i & 255}`));
    await failures.flush(true);
    assert.ok(rows.length <= 4 + 1, `${rows.length} rows`);
    assert.equal(countFor(rows, BOT), 1000);
    assert.match(rows.at(-1)?.detail ?? "", /^reason=agent_bad_key likely_leak suppressed=996 /);
  });

  it("accounts for every failure under its agent and stays within its row bound (property)", async () => {
    const limits = {
      intervalMs: 1000,
      maxKeys: 4,
      maxEntriesPerInterval: 3,
      leakThreshold: 2,
      maxAgents: 8,
    };
    const agents = ["", "agt_a", "agt_b"];
    const step = fc.oneof(
      fc.record({
        kind: fc.constant("fail" as const),
        source: fc.integer({ min: 0, max: 9 }),
        agent: fc.integer({ min: 0, max: 2 }),
        reason: fc.constantFrom("agent_bad_key", "agent_retired", "malformed"),
      }),
      fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 2500 }) }),
      fc.record({ kind: fc.constant("flush" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 120 }), async (steps) => {
        const { rows, clock, failures } = recorder(limits);
        const start = clock.t;
        const expected = new Map<string, number>();
        for (const s of steps) {
          if (s.kind === "tick") clock.t += s.ms;
          else if (s.kind === "flush") await failures.flush();
          else {
            const agentId = agents[s.agent] ?? "";
            expected.set(agentId, (expected.get(agentId) ?? 0) + 1);
            await failures.record(
              attempt(`s${s.source}`, {
                reason: agentId === "" ? s.reason.replace("agent_bad_key", "malformed") : s.reason,
                agentId,
                tokenKey: agentId === "" ? null : `tok-${agentId}`,
              }),
            );
          }
        }
        await failures.flush(true);
        for (const agentId of agents) {
          assert.equal(countFor(rows, agentId), expected.get(agentId) ?? 0, `agent "${agentId}"`);
        }
        const intervals = Math.floor((clock.t - start) / limits.intervalMs) + 2;
        const bound = intervals * (limits.maxEntriesPerInterval + agents.length);
        assert.ok(rows.length <= bound, `${rows.length} rows > ${bound}`);
      }),
      { numRuns: 200 },
    );
  });
});

describe("failed authentication in the audit log, over HTTP", () => {
  let t: TestServer;
  let owner: TestOwner;
  let bot: TestAgent;

  before(async () => {
    // Many failures from one address on purpose: keep the rate limit out of the way.
    t = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxFailures: 1000 } });
    owner = await TestOwner.initialized(t);
    await owner.putSecret("s", canary());
    bot = await owner.createAgent("bot", ["s"]);
  });
  after(() => t.close());

  const self = (authorization: string): Promise<HttpResult> =>
    call(t.url, { method: "GET", path: "/v1/agent/self", headers: { authorization } });

  const failedFor = async (name: string): Promise<AuditEntryView[]> => {
    const res = await owner.request("GET", `/v1/owner/audit?agent=${name}&limit=1000`);
    assert.equal(res.status, 200);
    return (res.json as { entries: AuditEntryView[] }).entries.filter(
      (e) => e.action === "auth.failed",
    );
  };

  it("attributes every wrong key against an agent to it, after a junk request in the same second", async () => {
    assert.equal((await self(formatAgentAuthorization(canary(16), canary(32)))).status, 401);
    for (let i = 0; i < 6; i++) {
      assert.equal((await self(formatAgentAuthorization(bot.tokenId, canary(32)))).status, 401);
    }
    t.clock.advance(1000);
    assert.equal((await self(formatAgentAuthorization(bot.tokenId, canary(32)))).status, 401);
    const failed = await failedFor("bot");
    assert.deepEqual(
      failed.map((e) => [e.agent_id, e.detail]),
      [
        [bot.id, "reason=agent_bad_key bad_keys=1"],
        [bot.id, "reason=agent_bad_key bad_keys=7 likely_leak suppressed=5"],
      ],
    );
    assert.equal(
      failed.reduce((n, e) => n + represented(e), 0),
      7,
    );
  });

  it("attributes the use of a revoked token to its agent", async () => {
    const gone = await owner.createAgent("gone", ["s"]);
    const res = await owner.request("POST", "/v1/owner/agents/gone/revoke", {});
    assert.equal(res.status, 200);
    t.clock.advance(1000);
    assert.equal((await self(gone.header)).status, 401);
    const failed = await failedFor("gone");
    assert.deepEqual(
      failed.map((e) => [e.agent_id, e.detail]),
      [[gone.id, "reason=agent_retired"]],
    );
  });
});
