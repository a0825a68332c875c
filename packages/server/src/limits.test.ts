/**
 * SECURITY-TESTS #16, limits, over the real HTTP API: expiry exactly at the boundary (agent and
 * grant), a grant's read budget without off-by-one and without overspending under concurrency,
 * agent CIDR allowlists for IPv4 and IPv6, and `X-Forwarded-For` believed only from the
 * configured proxies.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import type { GrantView } from "@keyhole/core";
import { DEFAULT_LIMITS } from "./auth/rate-limit.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call, errorCode, type HttpResult } from "./test-support/http.js";
import { ownedServer } from "./test-support/owned-server.js";
import { agentGet, canary, fetchAndOpen, type TestAgent, TestOwner } from "./test-support/owner.js";

function read(t: TestServer, agent: TestAgent, name: string, from?: string): Promise<HttpResult> {
  return call(t.url, {
    method: "GET",
    path: `/v1/agent/secrets/${name}`,
    headers: {
      authorization: agent.header,
      ...(from === undefined ? {} : { "x-forwarded-for": from }),
    },
  });
}

describe("limits: expiry exactly at the boundary", () => {
  let t: TestServer;
  let owner: TestOwner;

  ownedServer((ready) => ({ t, owner } = ready), { secrets: ["db"] });

  it("an agent works until the millisecond before expires_at, and not at it", async () => {
    const expiresAt = t.clock.now() + 10_000;
    const agent = await owner.createAgent("short", ["db"], { expiresAt });
    t.clock.t = expiresAt - 1;
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    t.clock.t = expiresAt;
    const res = await agentGet(t.url, agent, "/v1/agent/secrets/db");
    assert.equal(res.status, 401);
    assert.equal(errorCode(res), "unauthenticated");
  });

  it("a grant opens until the millisecond before not_after, and not at it", async () => {
    const agent = await owner.createAgent("granted");
    const notAfter = t.clock.now() + 10_000;
    assert.equal((await owner.grant(agent, "db", { notAfter })).status, 201);
    t.clock.t = notAfter - 1;
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    t.clock.t = notAfter;
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/db")).status, 404);
    const list = await agentGet(t.url, agent, "/v1/agent/secrets");
    assert.deepEqual(list.json, { secrets: [] });
  });
});

describe("limits: a grant's read budget (--max-uses)", () => {
  let t: TestServer;
  let owner: TestOwner;

  ownedServer((ready) => ({ t, owner } = ready), { secrets: ["db"] });

  async function grantOf(agent: TestAgent): Promise<GrantView> {
    const res = await owner.request("GET", `/v1/owner/grants?agent=${agent.name}`);
    const grants = (res.json as { grants: GrantView[] }).grants;
    assert.equal(grants.length, 1);
    return grants[0] as GrantView;
  }

  it("allows exactly N reads, refuses read N+1 as not found, and says why in the audit", async () => {
    const agent = await owner.createAgent("thrice");
    const res = await owner.grant(agent, "db", { maxUses: 3 });
    assert.equal(res.status, 201);
    assert.equal((res.json as GrantView).max_uses, 3);
    for (let i = 1; i <= 3; i++) {
      assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200, `read ${i}`);
    }
    assert.equal((await grantOf(agent)).uses, 3);
    const fourth = await agentGet(t.url, agent, "/v1/agent/secrets/db");
    assert.equal(fourth.status, 404);
    assert.equal(errorCode(fourth), "not_found");
    assert.deepEqual((await agentGet(t.url, agent, "/v1/agent/secrets")).json, { secrets: [] });
    const last = (await owner.auditEntries()).filter((e) => e.action === "secret.read").at(-1);
    assert.equal(last?.result, "denied");
    assert.equal(last?.detail, "max_uses=3 reached");
    // A refused read spends nothing.
    assert.equal((await grantOf(agent)).uses, 3);
  });

  it("keeps the reads spent across a new secret version and an agent rotate", async () => {
    let agent = await owner.createAgent("twice");
    assert.equal((await owner.grant(agent, "db", { maxUses: 2 })).status, 201);
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    await owner.putSecret("db", canary());
    assert.equal((await grantOf(agent)).uses, 1);
    ({ agent } = await owner.rotateAgent(agent, ["db"]));
    const after = await grantOf(agent);
    assert.deepEqual([after.max_uses, after.uses, after.version], [2, 1, 2]);
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/db")).status, 404);
  });

  it("a new `grant add` sets a fresh budget; 0 means no limit", async () => {
    const agent = await owner.createAgent("renewed");
    assert.equal((await owner.grant(agent, "db", { maxUses: 1 })).status, 201);
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/db")).status, 404);
    assert.equal((await owner.grant(agent, "db", { maxUses: 1 })).status, 201);
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    assert.equal((await owner.grant(agent, "db")).status, 201);
    for (let i = 0; i < 5; i++) {
      assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    }
    assert.deepEqual([(await grantOf(agent)).max_uses, (await grantOf(agent)).uses], [0, 0]);
  });

  it("never overspends under concurrent reads", async () => {
    const agent = await owner.createAgent("racer");
    assert.equal((await owner.grant(agent, "db", { maxUses: 5 })).status, 201);
    const results = await Promise.all(
      Array.from({ length: 25 }, () => agentGet(t.url, agent, "/v1/agent/secrets/db")),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(20).fill(404)]);
    assert.equal((await grantOf(agent)).uses, 5);
  });

  it("refuses a budget that is not a whole number in range", async () => {
    const agent = await owner.createAgent("bad-budget");
    const upload = await owner.grantUpload(await owner.openSecret("db"), agent);
    for (const max_uses of [-1, 1.5, "3", null, 1_000_000_001]) {
      const res = await owner.request("POST", "/v1/owner/grants", { ...upload, max_uses });
      assert.equal(res.status, 400, String(max_uses));
      assert.match(res.text, /max_uses/);
    }
  });
});

describe("limits: agent CIDR allowlists", () => {
  let t: TestServer;
  let owner: TestOwner;

  ownedServer((ready) => ({ t, owner } = ready), { secrets: ["db"] });

  it("accepts a token from inside its ranges", async () => {
    const agent = await owner.createAgent("local", ["db"], {
      allowedCidrs: ["10.0.0.0/8", "127.0.0.0/8"],
    });
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 200);
    const view = await owner.request("GET", "/v1/owner/agents/local");
    assert.deepEqual((view.json as { allowed_cidrs: string[] }).allowed_cidrs, [
      "10.0.0.0/8",
      "127.0.0.0/8",
    ]);
  });

  it("refuses a valid token from outside like a wrong key, and flags a likely leak", async () => {
    const agent = await owner.createAgent("fenced", ["db"], { allowedCidrs: ["10.0.0.0/8"] });
    const res = await agentGet(t.url, agent, "/v1/agent/secrets/db");
    assert.equal(res.status, 401);
    assert.equal(errorCode(res), "unauthenticated");
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 401);
    const failed = (await owner.auditEntries()).filter(
      (e) => e.action === "auth.failed" && e.agent_id === agent.id,
    );
    assert.ok(failed.length >= 1);
    assert.match(failed[0]?.detail ?? "", /reason=agent_source_not_allowed likely_leak/);
    assert.equal(failed[0]?.client_ip, "127.0.0.1");
  });

  it("refuses ranges that are not canonical, sorted and unique", async () => {
    for (const allowed_cidrs of [
      ["10.1.0.0/8"],
      ["127.0.0.0/8", "10.0.0.0/8"],
      ["10.0.0.0/8", "10.0.0.0/8"],
      ["10.0.0.1"],
      ["::ffff:10.0.0.0/104"],
      ["2001:DB8::/32"],
      "10.0.0.0/8",
      Array.from({ length: 33 }, (_, i) => `10.0.0.${i}/32`).sort(),
    ]) {
      const agent = await owner.mintAgent(`cidr-${Math.random().toString(36).slice(2, 8)}`);
      const body = { ...(await owner.agentCreateBody(agent)), allowed_cidrs };
      const res = await owner.request("POST", "/v1/owner/agents", body);
      assert.equal(res.status, 400, JSON.stringify(allowed_cidrs));
      assert.match(res.text, /allowed_cidrs/);
    }
  });

  it("matches IPv6 clients on an IPv6 listener", async (ctx) => {
    let v6: TestServer;
    try {
      v6 = await startTestServer({ host: "::1" });
    } catch {
      ctx.skip("no ::1 on this machine");
      return;
    }
    try {
      const owner6 = await TestOwner.initialized(v6);
      await owner6.putSecret("db", canary());
      const inside = await owner6.createAgent("v6-in", ["db"], { allowedCidrs: ["::1/128"] });
      const outside = await owner6.createAgent("v6-out", ["db"], {
        allowedCidrs: ["127.0.0.0/8", "2001:db8::/32"],
      });
      assert.equal((await fetchAndOpen(v6.url, inside, "db")).res.status, 200);
      assert.equal((await agentGet(v6.url, outside, "/v1/agent/secrets/db")).status, 401);
    } finally {
      await v6.close();
    }
  });
});

describe("limits: X-Forwarded-For only from configured proxies", () => {
  let proxied: TestServer;
  let direct: TestServer;
  let owner: TestOwner;
  let v4: TestAgent;
  let v6: TestAgent;

  before(async () => {
    // The test client is 127.0.0.1: here it plays the reverse proxy.
    proxied = await startTestServer({
      trustedProxies: ["127.0.0.1", "192.0.2.0/24"],
      limits: { ...DEFAULT_LIMITS, maxFailures: 3 },
    });
    owner = await TestOwner.initialized(proxied);
    await owner.putSecret("db", canary());
    v4 = await owner.createAgent("office", ["db"], { allowedCidrs: ["203.0.113.0/24"] });
    v6 = await owner.createAgent("office6", ["db"], { allowedCidrs: ["2001:db8:1::/48"] });
    direct = await startTestServer();
  });
  after(async () => {
    await proxied.close();
    await direct.close();
  });

  it("takes the client from a trusted proxy's header, IPv4 and IPv6", async () => {
    assert.equal((await read(proxied, v4, "db", "203.0.113.7")).status, 200);
    assert.equal((await read(proxied, v6, "db", "2001:db8:1:2::9")).status, 200);
    assert.equal((await read(proxied, v4, "db", "198.51.100.1")).status, 401);
    assert.equal((await read(proxied, v6, "db", "2001:db8:2::9")).status, 401);
    const ok = (await owner.auditEntries()).filter(
      (e) => e.action === "secret.read" && e.result === "ok",
    );
    assert.deepEqual(
      ok.map((e) => e.client_ip),
      ["203.0.113.7", "2001:db8:1:2::9"],
    );
  });

  it("walks a chain of trusted proxies from the right and stops at the first untrusted hop", async () => {
    // Client → 192.0.2.10 (trusted) → 127.0.0.1 (trusted): the client is 203.0.113.9.
    assert.equal((await read(proxied, v4, "db", "203.0.113.9, 192.0.2.10")).status, 200);
    // Whatever the client wrote on the left is not believed past an untrusted hop.
    assert.equal((await read(proxied, v4, "db", "203.0.113.9, 198.51.100.7")).status, 401);
    // Entries left of the client are the client's own writing: not even parsed.
    assert.equal((await read(proxied, v4, "db", "garbage, 203.0.113.9, 192.0.2.10")).status, 200);
    // Other spellings of an IPv4-mapped address are the IPv4 address.
    assert.equal((await read(proxied, v4, "db", "::ffff:cb00:7109")).status, 200);
    assert.equal((await read(proxied, v4, "db", "0:0:0:0:0:ffff:203.0.113.9")).status, 200);
    const last = (await owner.auditEntries()).filter((e) => e.action === "secret.read").at(-1);
    assert.equal(last?.client_ip, "203.0.113.9");
  });

  it("reads repeated headers as one list", async () => {
    // Sent over a raw socket: node:http clients fold a repeated header into one line.
    const url = new URL(proxied.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.end(
          "GET /v1/agent/secrets/db HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
            `Authorization: ${v4.header}\r\n` +
            "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n",
        );
      });
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString("latin1");
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    // Read as "203.0.113.9, 198.51.100.7": the client is the untrusted 198.51.100.7.
    assert.match(answer, /^HTTP\/1\.1 401 /);
  });

  it("ignores the header from a peer that is not a trusted proxy", async () => {
    const elsewhere = await startTestServer({ trustedProxies: ["192.0.2.0/24"] });
    try {
      const ownerE = await TestOwner.initialized(elsewhere);
      await ownerE.putSecret("db", canary());
      const agent = await ownerE.createAgent("office", ["db"], {
        allowedCidrs: ["203.0.113.0/24"],
      });
      assert.equal((await read(elsewhere, agent, "db", "203.0.113.7")).status, 401);
      assert.equal((await read(elsewhere, agent, "db", "junk")).status, 401);
      const failed = (await ownerE.auditEntries()).filter((e) => e.action === "auth.failed");
      assert.equal(failed.at(-1)?.client_ip, "127.0.0.1");
    } finally {
      await elsewhere.close();
    }
  });

  it("warns at start-up about a trusted range wider than one subnet", async () => {
    const wide = await startTestServer({ trustedProxies: ["10.0.0.0/8", "192.0.2.7"] });
    await wide.close();
    const line = wide.logs.find((l) => l.includes("wider than one subnet"));
    assert.ok(line, wide.logs.join("\n"));
    assert.match(line, /10\.0\.0\.0\/8/);
    assert.doesNotMatch(line, /192\.0\.2\.7/);
  });

  it("without a header, the proxy itself is the client", async () => {
    assert.equal((await read(proxied, v4, "db")).status, 401);
  });

  it("refuses a header it cannot read, with 400 and no work", async () => {
    for (const bad of ["junk", "203.0.113.7:443", "[2001:db8::1]", "203.0.113.7,,", "unknown"]) {
      const res = await read(proxied, v4, "db", bad);
      assert.equal(res.status, 400, bad);
      assert.match(res.text, /X-Forwarded-For/);
    }
    const long = Array.from({ length: 40 }, () => "192.0.2.1").join(",");
    assert.equal((await read(proxied, v4, "db", long)).status, 400);
  });

  it("rate-limits the forwarded client, not the proxy everyone shares", async () => {
    const wrong = { ...v4, header: `Keyhole ${"A".repeat(22)}.${"B".repeat(43)}` };
    let last = 0;
    for (let i = 0; i < 6; i++) last = (await read(proxied, wrong, "db", "198.51.100.66")).status;
    assert.equal(last, 429);
    // Another client behind the same proxy is not blocked.
    assert.equal((await read(proxied, wrong, "db", "198.51.100.67")).status, 401);
    assert.equal((await read(proxied, v4, "db", "203.0.113.7")).status, 200);
  });

  it("ignores the header on a server with no trusted proxies", async () => {
    const ownerD = await TestOwner.initialized(direct);
    await ownerD.putSecret("db", canary());
    const agent = await ownerD.createAgent("office", ["db"], { allowedCidrs: ["203.0.113.0/24"] });
    assert.equal((await read(direct, agent, "db", "203.0.113.7")).status, 401);
    const anywhere = await ownerD.createAgent("anywhere", ["db"]);
    assert.equal((await read(direct, anywhere, "db", "junk")).status, 200);
    const last = (await ownerD.auditEntries()).filter((e) => e.action === "secret.read").at(-1);
    assert.equal(last?.client_ip, "127.0.0.1");
  });
});
