import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { encodeBase64url } from "@keyhole/core";
import { Metrics } from "./metrics.js";
import { type RunningServer, startServer } from "./server.js";
import { call } from "./test-support/http.js";
import { agentGet, canary, TestOwner } from "./test-support/owner.js";

/** A sample line of the text format: `name{labels} value` (labels optional). */
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? \S+$/;

/** Parses the exposition text into `name{labels}` → value, failing on any malformed line. */
function parse(text: string): Map<string, number> {
  assert.ok(text.endsWith("\n"));
  const samples = new Map<string, number>();
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    assert.match(line, SAMPLE);
    const space = line.lastIndexOf(" ");
    const value = Number(line.slice(space + 1));
    assert.ok(!Number.isNaN(value), line);
    samples.set(line.slice(0, space), value);
  }
  return samples;
}

async function scrape(url: string): Promise<{ text: string; samples: Map<string, number> }> {
  const res = await call(url, { method: "GET", path: "/metrics" });
  assert.equal(res.status, 200);
  assert.equal(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  return { text: res.text, samples: parse(res.text) };
}

async function start(metrics: boolean): Promise<{ server: RunningServer; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "keyhole-metrics-"));
  const server = await startServer({ dataDir: dir, port: 0, log: () => {}, metrics });
  return { server, dir };
}

describe("Metrics", () => {
  it("counts by route pattern and status class, with a cumulative histogram", () => {
    const m = new Metrics();
    const route = {
      method: "GET",
      pattern: "/v1/agent/secrets/:name",
      role: "agent",
      handler: async () => ({ status: 200, body: null }),
    } as const;
    m.observe(route, 200, 3);
    m.observe(route, 401, 700);
    m.observe(null, 404, 1);
    const samples = parse(m.render(7));
    const base = 'method="GET",route="/v1/agent/secrets/:name"';
    assert.equal(samples.get(`keyhole_http_requests_total{${base},status="2xx"}`), 1);
    assert.equal(samples.get(`keyhole_http_requests_total{${base},status="4xx"}`), 1);
    assert.equal(
      samples.get('keyhole_http_requests_total{method="unmatched",route="unmatched",status="4xx"}'),
      1,
    );
    const bucket = (le: string) =>
      samples.get(`keyhole_http_request_duration_seconds_bucket{${base},le="${le}"}`);
    assert.equal(bucket("0.005"), 1);
    assert.equal(bucket("0.5"), 1);
    assert.equal(bucket("1"), 2);
    assert.equal(bucket("+Inf"), 2);
    assert.equal(samples.get(`keyhole_http_request_duration_seconds_count{${base}}`), 2);
    assert.equal(samples.get('keyhole_auth_failures_total{role="agent"}'), 1);
    assert.equal(samples.get("keyhole_audit_chain_length"), 7);
  });
});

describe("GET /metrics", () => {
  let server: RunningServer;
  let dir: string;
  let owner: TestOwner;
  before(async () => {
    ({ server, dir } = await start(true));
    owner = await TestOwner.initialized({ url: server.url, server, clock: { now: Date.now } });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is a 404 unless enabled", async () => {
    const off = await start(false);
    try {
      const res = await call(off.server.url, { method: "GET", path: "/metrics" });
      assert.equal(res.status, 404);
      assert.equal((res.json as { error: { code: string } }).error.code, "not_found");
    } finally {
      await off.server.close();
      rmSync(off.dir, { recursive: true, force: true });
    }
  });

  it("parses, and its counters move after requests", async () => {
    const before = (await scrape(server.url)).samples;
    const healthz = 'keyhole_http_requests_total{method="GET",route="/healthz",status="2xx"}';
    const count = 'keyhole_http_request_duration_seconds_count{method="GET",route="/healthz"}';
    for (let i = 0; i < 3; i++) await call(server.url, { method: "GET", path: "/healthz" });
    await call(server.url, { method: "GET", path: "/v1/agent/self" });
    await call(server.url, {
      method: "GET",
      path: "/v1/owner/agents",
      headers: { authorization: "Keyhole-Owner nonsense" },
    });
    const after = (await scrape(server.url)).samples;
    assert.equal((after.get(healthz) ?? 0) - (before.get(healthz) ?? 0), 3);
    assert.equal((after.get(count) ?? 0) - (before.get(count) ?? 0), 3);
    const failures = (s: Map<string, number>, role: string) =>
      s.get(`keyhole_auth_failures_total{role="${role}"}`) ?? 0;
    assert.equal(failures(after, "agent") - failures(before, "agent"), 1);
    assert.equal(failures(after, "owner") - failures(before, "owner"), 1);
    // init, one auth.failed per refused attempt (or held back by the throttle): at least 1.
    assert.ok((after.get("keyhole_audit_chain_length") ?? 0) >= 1);
  });

  it("holds no secret name, agent name, token id or client address", async () => {
    const secretName = `canary-${randomBytes(6).toString("hex")}`;
    const agentName = `agent-${randomBytes(6).toString("hex")}`;
    await owner.putSecret(secretName, canary());
    const agent = await owner.createAgent(agentName, [secretName]);
    assert.equal(
      (await agentGet(server.url, agent, `/v1/agent/secrets/${secretName}`)).status,
      200,
    );
    await call(server.url, { method: "GET", path: `/v1/agent/secrets/${secretName}` });
    await call(server.url, { method: "GET", path: `/${secretName}` });
    await owner.request("GET", `/v1/owner/agents/${agentName}`);
    const { text, samples } = await scrape(server.url);
    const fetches = 'method="GET",route="/v1/agent/secrets/:name"';
    assert.equal(samples.get(`keyhole_http_requests_total{${fetches},status="2xx"}`), 1);
    assert.equal(samples.get(`keyhole_http_requests_total{${fetches},status="4xx"}`), 1);
    for (const needle of [
      secretName,
      agentName,
      encodeBase64url(agent.tokenId),
      agent.id,
      "127.0.0.1",
    ]) {
      assert.equal(text.includes(needle), false, needle);
    }
  });
  it("counts writes, commits and fsyncs: concurrent fetches share them", async () => {
    await owner.putSecret("shared", canary());
    const agent = await owner.createAgent("sharer", ["shared"]);
    const before = (await scrape(server.url)).samples;
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => agentGet(server.url, agent, "/v1/agent/secrets/shared")),
    );
    assert.ok(answers.every((res) => res.status === 200));
    const after = (await scrape(server.url)).samples;
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    const writes = delta("keyhole_store_writes_total");
    assert.ok(writes >= 40, `every audited fetch is a write (${writes})`);
    assert.ok(delta("keyhole_store_commits_total") >= 1);
    assert.ok(delta("keyhole_store_fsyncs_total") >= 1, "nothing is answered without an fsync");
    assert.ok(delta("keyhole_store_fsyncs_total") <= delta("keyhole_store_commits_total"));
    assert.ok(delta("keyhole_store_commits_total") <= writes);
  });
});
