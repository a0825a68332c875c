// Load (issue 4, Reliability): a real flood, bounded for CI. A separate load-generator process
// keeps 300 keep-alive connections busy for 4 s against the server (in this process, so its
// in-flight bound can be lowered to 16 and shedding really happens): most read a secret with a
// valid agent token, a tenth present random tokens (401, then 429 once the source is blocked).
// Meanwhile /healthz is probed every 50 ms. Every answer must be 200, 401, 429 or 503; every 429
// and 503 carries Retry-After; health checks answer throughout; once the flood stops a
// legitimate read succeeds quickly. The 503s come from the bound and from the loop-turn budget
// (in-flight.ts, unit-tested first): without the budget this flood got no 503 at all.
// bench/flood.mjs is the full-scale version (1,000 connections, a `keyhole server` process,
// recovery time, memory and SIGTERM under load measured).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { InFlightLimit, MIN_TURN_REQUESTS } from "./http/in-flight.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call } from "./test-support/http.js";
import { agentGet, canary, type TestAgent, TestOwner } from "./test-support/owner.js";

const CONNECTIONS = 300;
const BAD = 30;
const FLOOD_MS = 4_000;
const MAX_IN_FLIGHT = 16;

/** What the load generator reports. */
interface FloodResult {
  readonly sent: number;
  readonly statuses: Record<string, number>;
  readonly errors: Record<string, number>;
  readonly missingRetryAfter: number;
  readonly ended: number;
}

// The load generator, run with `node --input-type=module -e` (its own event loop and core
// share): closed-loop workers on one keep-alive agent, bounded by FLOOD_SPEC.durationMs.
const LOAD_SCRIPT = `
import http from "node:http";
import { randomBytes } from "node:crypto";
const spec = JSON.parse(process.env.FLOOD_SPEC);
const target = new URL(spec.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections });
const statuses = {};
const errors = {};
let sent = 0;
let missingRetryAfter = 0;
const until = Date.now() + spec.durationMs;
function once(authorization) {
  return new Promise((resolve) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, agent,
        headers: { authorization } },
      (res) => {
        const retry = res.headers["retry-after"];
        res.on("end", () => resolve({ status: res.statusCode, retry }));
        res.on("error", () => resolve({ error: "body-cut" }));
        res.resume();
      },
    );
    req.setTimeout(10000, () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
    req.on("error", (e) => resolve({ error: e.code ?? "error" }));
    req.end();
  });
}
async function worker(bad) {
  while (Date.now() < until) {
    const auth = bad
      ? "Keyhole " + randomBytes(16).toString("base64url") + "." + randomBytes(32).toString("base64url")
      : spec.authorization;
    const r = await once(auth);
    sent++;
    if (r.error !== undefined) errors[r.error] = (errors[r.error] ?? 0) + 1;
    else {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if ((r.status === 503 || r.status === 429) && r.retry === undefined) missingRetryAfter++;
    }
  }
}
const workers = [];
for (let i = 0; i < spec.connections; i++) workers.push(worker(i < spec.bad));
await Promise.all(workers);
agent.destroy();
process.stdout.write(JSON.stringify({ sent, statuses, errors, missingRetryAfter, ended: Date.now() }));
`;

function runFlood(url: string, authorization: string): Promise<FloodResult> {
  const spec = { url, authorization, connections: CONNECTIONS, bad: BAD, durationMs: FLOOD_MS };
  const child = spawn(process.execPath, ["--input-type=module", "-e", LOAD_SCRIPT], {
    env: { PATH: process.env.PATH, FLOOD_SPEC: JSON.stringify(spec) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => {
      if (code === 0) resolve(JSON.parse(out) as FloodResult);
      else reject(new Error(`load generator exited ${code}`));
    });
  });
}

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

test("a loop turn past its budget with a flood's worth of requests sheds the rest", async () => {
  const limit = new InFlightLimit(10_000, 50);
  for (let i = 0; i < MIN_TURN_REQUESTS + 1; i++) assert.ok(limit.admit("/v1/agent/secrets/x"));
  busy(60);
  assert.ok(!limit.admit("/v1/agent/secrets/x"), "shed late in an overlong turn");
  assert.ok(limit.admit("/healthz"), "health checks are still admitted");
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(limit.admit("/v1/agent/secrets/x"), "the next turn admits again");

  // A long turn with only a few requests (one slow request, a descheduled process) sheds nothing.
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(limit.admit("/v1/agent/secrets/x"));
  busy(60);
  assert.ok(limit.admit("/v1/agent/secrets/x"));
});

let server: TestServer;
let agent: TestAgent;
before(async () => {
  server = await startTestServer({ maxInFlight: MAX_IN_FLIGHT, logLevel: "error" });
  const owner = await TestOwner.initialized(server);
  await owner.putSecret("db", canary());
  agent = await owner.createAgent("reader", ["db"]);
});
after(() => server.close());

test("a flood is answered only with 200/401/429/503, health checks answer, service recovers", async () => {
  const path = "/v1/agent/secrets/db";
  assert.equal((await agentGet(server.url, agent, path)).status, 200);

  const flood = runFlood(`${server.url}${path}`, agent.header);
  // Health checks every 50 ms while the flood runs (each one bounded: a hang fails the test).
  const health: { status: number; ms: number }[] = [];
  let flooding = true;
  const probing = (async () => {
    while (flooding) {
      const started = performance.now();
      const res = await Promise.race([
        call(server.url, { method: "GET", path: "/healthz" }),
        // Unref: a pending timer would keep the test process alive 5 s after the test.
        sleep(5_000, undefined, { ref: false }).then(() => ({ status: 0 })),
      ]);
      health.push({ status: res.status, ms: performance.now() - started });
      await sleep(50);
    }
  })();
  const result = await flood;
  flooding = false;
  await probing;

  // Recovery: once the flood's connections are gone a legitimate read succeeds at once.
  const stopped = Date.now();
  let recovered = -1;
  while (Date.now() - stopped < 3_000) {
    if ((await agentGet(server.url, agent, path)).status === 200) {
      recovered = Date.now() - stopped;
      break;
    }
    await sleep(50);
  }
  const slowest = Math.max(...health.map((h) => h.ms));
  process.stdout.write(
    `# flood: ${JSON.stringify(result.statuses)} errors ${JSON.stringify(result.errors)}, ` +
      `${health.length} health checks (slowest ${slowest.toFixed(0)} ms), recovered in ${recovered} ms\n`,
  );

  const statuses = Object.keys(result.statuses).map(Number);
  assert.deepEqual(
    statuses.filter((s) => ![200, 401, 429, 503].includes(s)),
    [],
    "no status outside 200/401/429/503",
  );
  assert.equal(result.missingRetryAfter, 0, "every 429 and 503 carries Retry-After");
  assert.deepEqual(result.errors, {}, "every request got an answer (no resets, no timeouts)");
  assert.ok((result.statuses[200] ?? 0) > 0, "valid reads were served during the flood");
  assert.ok((result.statuses[429] ?? 0) > 0, "bad tokens were rate limited");
  assert.ok((result.statuses[503] ?? 0) > 0, "load was shed with 503");
  assert.ok(health.length >= 10, `only ${health.length} health checks`);
  assert.deepEqual(
    health.filter((h) => h.status !== 200),
    [],
    "every health check during the flood answered 200",
  );
  assert.ok(recovered >= 0 && recovered < 1_000, `recovered in ${recovered} ms`);
});
