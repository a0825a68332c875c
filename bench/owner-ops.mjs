#!/usr/bin/env node
// Owner operations (issue 5): `secret set` (a new version of a secret) with 1, 10 and 100
// granted agents, and `agent rotate` with 10, 500 and 1,000 grants, against a real `keyhole
// server` on 127.0.0.1 (SQLite). Timed in this process on the very functions the `keyhole`
// command runs after parsing its arguments (packages/cli/src/owner: putSecretValue,
// rotateAgent), over real HTTP with signed owner requests, in one session unlocked once: so
// neither Node's start-up nor the Argon2 unlock of the key file is what is measured. One row
// times the whole `keyhole secret set` process for the fixed cost. Per operation: requests sent,
// the largest body, the owner's and the server's CPU time. An operation the server refuses is
// reported with its error and the time the owner waited for it (1,000 grants do not fit in the
// server's 256 KiB body limit).
//
// The set-up goes through the same owner functions (`secret set`, `agent create`, and for the
// largest rotate one `grant add` per grant, as an owner would make 1,000 grants) and is timed
// too: the first and last 100 grant adds show whether adding a grant costs more as the agent
// holds more.
//
//   node bench/owner-ops.mjs           1/10/100 agents, 10/500/1,000 grants (about 2 minutes)
//   node bench/owner-ops.mjs --smoke   1/10 agents, 10/100 grants, no result file (about 10 s)
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { processIo } from "../packages/cli/dist/io.js";
import { createAgent, requireAgent, rotateAgent } from "../packages/cli/dist/owner/agents.js";
import { addGrant } from "../packages/cli/dist/owner/grants.js";
import { putSecretValue } from "../packages/cli/dist/owner/secrets.js";
import { openSession } from "../packages/cli/dist/owner/session.js";
import { startKeyholeServer } from "./keyhole-server.mjs";
import { keyhole } from "./seed.mjs";

const { values: options } = parseArgs({ options: { smoke: { type: "boolean" } } });
const smoke = options.smoke === true;
const setSizes = smoke ? [1, 10] : [1, 10, 100];
const rotateSizes = smoke ? [10, 100] : [10, 500, 1000];
/** Runs per point: more for the fast ones, whose spread is larger. */
const runsFor = (n) => (n <= 10 ? (smoke ? 3 : 9) : smoke ? 1 : n <= 100 ? 5 : 3);
const here = fileURLToPath(new URL(".", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "keyhole-owner-ops-"));
const env = {
  PATH: process.env.PATH,
  HOME: dir,
  KEYHOLE_HOME: join(dir, "owner"),
  KEYHOLE_PASSPHRASE: "benchmark passphrase",
};
const value = () => randomBytes(64);
const pad = (i) => String(i).padStart(4, "0");
const sorted = (values) => [...values].sort((a, b) => a - b);
const median = (values) => sorted(values)[Math.floor(values.length / 2)];
const sum = (values) => values.reduce((total, t) => total + t, 0);

async function timed(fn) {
  const start = performance.now();
  const result = await fn();
  return { ms: performance.now() - start, result };
}

function stats(times) {
  return {
    runs: times.length,
    median: median(times),
    min: sorted(times)[0],
    max: Math.max(...times),
  };
}

/** Every owner request an operation sends: how many, and the largest body (bytes of JSON). */
const traffic = { requests: 0, maxBody: 0 };

/** Counts the requests of `session.client` (what `request` and `requestOrNull` go through). */
function countRequests(session) {
  const send = session.client.requestRaw.bind(session.client);
  session.client.requestRaw = (method, path, body) => {
    traffic.requests++;
    if (body !== undefined) {
      traffic.maxBody = Math.max(traffic.maxBody, Buffer.byteLength(JSON.stringify(body)));
    }
    return send(method, path, body);
  };
}

/**
 * Runs `fn` `runs` times (stopping at the first failure, whose time and error code are kept):
 * the durations, and the requests and largest body of the last run.
 */
async function measure(runs, fn) {
  const times = [];
  let error = null;
  const ownerCpu = process.cpuUsage();
  const serverCpu = serverCpuMs();
  for (let i = 0; i < runs && error === null; i++) {
    Object.assign(traffic, { requests: 0, maxBody: 0 });
    const start = performance.now();
    try {
      await fn();
    } catch (caught) {
      error = caught.code ?? String(caught);
    }
    times.push(performance.now() - start);
  }
  // CPU per run, averaged (the server's counter ticks in 10 ms): the rest of the wall time is
  // waiting, for the network, the other process or the server's fsync.
  const { user, system } = process.cpuUsage(ownerCpu);
  const cpu = {
    ownerCpuMs: (user + system) / 1000 / times.length,
    serverCpuMs: (serverCpuMs() - serverCpu) / times.length,
  };
  return { ...stats(times), ...cpu, requests: traffic.requests, maxBody: traffic.maxBody, error };
}

/** User + system CPU time of the server so far, in ms (/proc, clock ticks of 10 ms). */
function serverCpuMs() {
  const fields = readFileSync(`/proc/${server.child.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const server = await startKeyholeServer({ env, dataDir: join(dir, "data") });
const rows = [];
const setup = [];
const breakdown = [];
/** The duration of each grant add to the agent with the most grants, in order. */
const addTimes = [];
try {
  env.KEYHOLE_ADDR = server.addr;
  keyhole(env, ["init", "--bootstrap-code", server.code]);
  // What the command does before it calls the owner functions: unlock, connect (once here).
  const io = { ...processIo(), env };
  const unlock = await timed(() => openSession(io, { insecureHttp: false }));
  const session = unlock.result;
  countRequests(session);
  setup.push({ step: "open the session (read config, Argon2 unlock)", n: 1, ms: unlock.ms });

  // secret set: secret `set-N` granted to agents 1..N.
  const newSecrets = await timed(async () => {
    for (const n of setSizes) await putSecretValue(session, `set-${n}`, value());
  });
  setup.push({ step: "secret set, new secret (0 agents)", n: setSizes.length, ms: newSecrets.ms });
  const maxAgents = Math.max(...setSizes);
  const agents = await timed(async () => {
    for (let k = 1; k <= maxAgents; k++) {
      const secrets = setSizes.filter((n) => k <= n).map((n) => `set-${n}`);
      const made = await createAgent(session, { name: `agent-${k}`, secrets, expiresAt: null });
      made.token.destroy();
    }
  });
  setup.push({
    step: `agent create (1–${setSizes.length} grants each)`,
    n: maxAgents,
    ms: agents.ms,
  });
  for (const n of setSizes) {
    const m = await measure(runsFor(n), async () => {
      const put = await putSecretValue(session, `set-${n}`, value());
      if (put.agents !== n) throw new Error(`set-${n} was wrapped for ${put.agents} agents`);
    });
    rows.push({ operation: "secret set (new version)", n, unit: "agents", ...m });
  }

  // agent rotate: agent `rotate-N` holds grants of secrets grant-0001..grant-N. The largest
  // gets its grants one `grant add` at a time, the others at creation (one request).
  const maxGrants = Math.max(...rotateSizes);
  const grantSecrets = await timed(async () => {
    for (let i = 1; i <= maxGrants; i++) await putSecretValue(session, `grant-${pad(i)}`, value());
  });
  setup.push({ step: "secret set, new secret (0 agents)", n: maxGrants, ms: grantSecrets.ms });
  const grantNames = (n) => Array.from({ length: n }, (_, i) => `grant-${pad(i + 1)}`);
  for (const n of rotateSizes.filter((size) => size !== maxGrants)) {
    const made = await timed(() =>
      createAgent(session, { name: `rotate-${n}`, secrets: grantNames(n), expiresAt: null }),
    );
    made.result.token.destroy();
    setup.push({ step: `agent create with ${n} grants (per grant)`, n, ms: made.ms });
  }
  const big = `rotate-${maxGrants}`;
  (await createAgent(session, { name: big, secrets: [], expiresAt: null })).token.destroy();
  const limits = { notAfter: 0, allowedHosts: [], maxUses: 0 };
  for (const secret of grantNames(maxGrants)) {
    addTimes.push((await timed(() => addGrant(session, big, secret, limits))).ms);
  }
  setup.push({ step: `grant add, all ${maxGrants} to ${big}`, n: maxGrants, ms: sum(addTimes) });
  // Does a grant add cost more when the agent already holds many? The first and last ones.
  const window = Math.min(100, Math.floor(maxGrants / 4));
  for (const [which, part] of [
    ["first", addTimes.slice(0, window)],
    ["last", addTimes.slice(-window)],
  ]) {
    setup.push({ step: `grant add, the ${which} ${window} to ${big}`, n: window, ms: sum(part) });
  }

  for (const n of rotateSizes) {
    const m = await measure(runsFor(n), async () => {
      const rotated = await rotateAgent(session, `rotate-${n}`);
      rotated.token.destroy();
      if (rotated.agent.grant_count !== n) throw new Error(`rotate-${n}: wrong grant count`);
    });
    rows.push({ operation: "agent rotate", n, unit: "grants", ...m });
  }

  // Where a grant add's time goes once the agent holds many grants (see the set-up table).
  const show = await measure(5, () => requireAgent(session, big));
  breakdown.push({
    step: `GET /v1/owner/agents/${big} (${maxGrants} grants, parsed)`,
    ms: show.median,
  });
  const reload = await measure(5, () => session.reloadPins());
  const configBytes = statSync(join(env.KEYHOLE_HOME, "config.json")).size;
  breakdown.push({
    step: `read config.json (${Math.round(configBytes / 1024)} KiB of pins)`,
    ms: reload.median,
  });
  const update = await measure(5, () => session.updatePins((c) => c));
  breakdown.push({ step: "rewrite config.json under its lock (updatePins)", ms: update.median });
  await session.savePins();

  // The whole command, from spawn to exit: Node start-up, imports, Argon2 unlock, the work.
  const whole = await measure(smoke ? 1 : 3, () =>
    keyhole(env, ["secret", "set", "set-1"], "x".repeat(64)),
  );
  rows.push({ operation: "whole `keyhole secret set` process", n: 1, unit: "agents", ...whole });
} finally {
  server.child.kill("SIGTERM");
  await server.exited;
  rmSync(dir, { recursive: true, force: true });
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`;
const date = new Date().toISOString();
console.log(`${machine}, ${date}; in-process owner functions over HTTP, one session\n`);
console.log(
  "| operation | agents/grants | median ms | per agent/grant ms | min ms | max ms | runs | " +
    "requests | largest body KiB | owner CPU ms | server CPU ms |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  // A refused operation: how long the owner waited to learn it, and why.
  const median =
    r.error === null ? r.median.toFixed(1) : `refused (${r.error}) after ${r.median.toFixed(0)}`;
  const perItem = r.error === null ? (r.median / r.n).toFixed(2) : "";
  const body = r.maxBody === 0 ? "" : (r.maxBody / 1024).toFixed(1);
  console.log(
    `| ${r.operation} | ${r.n} ${r.unit} | ${median} | ${perItem} | ${r.min.toFixed(1)} | ` +
      `${r.max.toFixed(1)} | ${r.runs} | ${r.requests || ""} | ${body} | ` +
      `${r.requests ? r.ownerCpuMs.toFixed(0) : ""} | ${r.serverCpuMs.toFixed(0)} |`,
  );
}
console.log("\n| owner set-up step | count | total s | per item ms |\n|---|---|---|---|");
for (const s of setup) {
  console.log(`| ${s.step} | ${s.n} | ${(s.ms / 1000).toFixed(2)} | ${(s.ms / s.n).toFixed(1)} |`);
}
console.log("\n| with the agent holding the most grants | median ms of 5 |\n|---|---|");
for (const b of breakdown) console.log(`| ${b.step} | ${b.ms.toFixed(1)} |`);
// A body over the server's limit is a finding (the full run's largest rotate); anything else
// refused means the script or the server broke.
if (rows.some((r) => r.error !== null && r.error !== "payload_too_large")) process.exitCode = 1;
if (!smoke) {
  const file = join(here, "results", `owner-ops-${date.replace(/[:.]/g, "-")}.json`);
  const result = {
    machine,
    date,
    rows,
    setup,
    breakdown,
    grantAddMs: addTimes,
  };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwritten ${file}`);
}
