#!/usr/bin/env node
// The flood benchmark (issue 4, Reliability, "Load" and "Graceful shutdown under load"): a real
// `keyhole server` process on 127.0.0.1 is flooded from a separate load-generator process with
// 1,000 concurrent keep-alive connections, most doing authenticated agent reads (a precomputed
// auth header, as bench/run.mjs does) and some sending bad tokens (401, then 429 once the source
// is blocked). A third process probes `/healthz` (a new connection each time, as an orchestrator
// does, and over one kept-alive connection) and one legitimate agent read every 50 ms before,
// during and after the flood. Then: is the server alive, does the audit chain verify, how long
// until the legitimate read is back to its pre-flood latency. Phase two floods a fresh server
// and sends it SIGTERM mid-flood: which requests in flight were answered, the exit code, and
// how long the exit took.
//
//   node bench/flood.mjs            10 s flood, SIGTERM 2 s into a second flood; writes
//                                   bench/results/flood-*.json (about 45 s in all)
//   node bench/flood.mjs --smoke    1 s flood, 200 connections (keeps the script working; only
//                                   correctness fails it, not health-check timing)
//   --connections=N --bad=N --duration=MS   narrow a run
//
// The same file is the load generator (`--child=load SPEC`) and the prober (`--child=probe SPEC`).
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const option = (name) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const now = () => performance.timeOrigin + performance.now();
const childRole = option("child");

/**
 * One request on `agent`; resolves with its outcome: the status, or the error's code. `written`
 * is when the whole request had been handed to the kernel (-1 if never).
 */
function request(agent, target, headers, timeoutMs) {
  return new Promise((resolve) => {
    const started = now();
    let written = -1;
    let settled = false;
    let reused = false;
    const done = (outcome, retryAfter) => {
      if (settled) return;
      settled = true;
      resolve({ started, written, ended: now(), outcome, reused, retryAfter });
    };
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, agent, headers },
      (res) => {
        const status = res.statusCode ?? 0;
        const retryAfter = res.headers["retry-after"];
        res.on("end", () => done(status, retryAfter));
        res.on("error", () => done("body-cut"));
        res.on("close", () => done(res.complete ? status : "body-cut", retryAfter));
        res.resume();
      },
    );
    req.on("socket", () => {
      reused = req.reusedSocket;
    });
    req.on("finish", () => {
      written = now();
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error("t"), { code: "TIMEOUT" })),
    );
    req.on("error", (error) => done(error.code ?? "error"));
    req.end();
  });
}

/**
 * The load generator: `good` closed-loop workers reading a secret with a valid token, `bad`
 * workers presenting random well-formed tokens. With `record`, every request's timing is kept
 * (the shutdown phase needs it); else only counts and a latency sample. A worker stops when the
 * server refuses connections (it is gone).
 */
async function loadChild(spec) {
  const target = new URL(spec.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.good + spec.bad });
  const statuses = {};
  const errors = {};
  const records = [];
  const latencies = [];
  let sent = 0;
  let missingRetryAfter = 0;
  let newConnections = 0;
  const start = now();
  const until = start + spec.durationMs;
  const badHeader = () =>
    `Keyhole ${randomBytes(16).toString("base64url")}.${randomBytes(32).toString("base64url")}`;
  async function worker(bad) {
    while (now() < until) {
      const headers = { authorization: bad ? badHeader() : spec.authorization };
      const r = await request(agent, target, headers, 10_000);
      sent++;
      if (!r.reused) newConnections++;
      if (typeof r.outcome === "number") {
        statuses[r.outcome] = (statuses[r.outcome] ?? 0) + 1;
        if ((r.outcome === 503 || r.outcome === 429) && r.retryAfter === undefined)
          missingRetryAfter++;
        if (!bad && latencies.length < 200_000) latencies.push(r.ended - r.started);
      } else {
        errors[r.outcome] = (errors[r.outcome] ?? 0) + 1;
      }
      if (spec.record) records.push([r.started, r.written, r.ended, r.outcome, r.reused ? 1 : 0]);
      if (r.outcome === "ECONNREFUSED") return;
    }
  }
  const workers = [];
  for (let i = 0; i < spec.good; i++) workers.push(worker(false));
  for (let i = 0; i < spec.bad; i++) workers.push(worker(true));
  await Promise.all(workers);
  const end = now();
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  process.stdout.write(
    `${JSON.stringify({
      start,
      end,
      sent,
      newConnections,
      statuses,
      errors,
      missingRetryAfter,
      p50: pick(0.5) ?? 0,
      p99: pick(0.99) ?? 0,
      records: spec.record ? records : undefined,
    })}\n`,
  );
}

/** The prober: `/healthz` and one agent read every `intervalMs` until its stdin closes. */
async function probeChild(spec) {
  const target = new URL(spec.url);
  const health = new URL("/healthz", target);
  // The server's separate health listener (`--health-port`), also a new connection each.
  const healthPort = new URL("/healthz", spec.healthUrl);
  // Health checks as an orchestrator sends them (a new connection each, like the kubelet), and
  // over one kept-alive connection; the agent read over keep-alive, as the SDK does.
  const kept = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const reader = new http.Agent({ keepAlive: true });
  const samples = [];
  const pending = new Set();
  const fire = (kind, agent, url, headers) => {
    const p = request(agent, url, headers, 5_000).then((r) => {
      samples.push([kind, r.started, r.ended - r.started, r.outcome]);
      pending.delete(p);
    });
    pending.add(p);
  };
  const timer = setInterval(() => {
    fire("health", false, health, {});
    fire("health-kept", kept, health, {});
    fire("health-port", false, healthPort, {});
    fire("read", reader, target, { authorization: spec.authorization });
  }, spec.intervalMs);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once("end", resolve));
  clearInterval(timer);
  await Promise.all(pending);
  kept.destroy();
  reader.destroy();
  process.stdout.write(`${JSON.stringify({ samples })}\n`);
}

/** Runs `node flood.mjs --child=ROLE SPEC`; resolves with its parsed stdout. */
function runChild(role, spec, { stdinOpen = false } = {}) {
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), `--child=${role}`],
    // The spec holds agent auth keys: in the child's environment (this user's only), not argv.
    {
      stdio: [stdinOpen ? "pipe" : "ignore", "pipe", "inherit"],
      env: { ...process.env, KEYHOLE_BENCH_SPEC: JSON.stringify(spec) },
    },
  );
  let out = "";
  child.stdout.on("data", (chunk) => {
    out += chunk;
  });
  const result = new Promise((resolve, reject) => {
    child.on("exit", (code) => {
      if (code === 0) resolve(JSON.parse(out));
      else reject(new Error(`${role} child exited ${code}`));
    });
  });
  return { child, result };
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function procStatus(pid, field) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(
      new RegExp(`^${field}:\\s+(\\d+)`, "m"),
    );
    return m ? Number(m[1]) / 1024 : Number.NaN; // MiB
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) a process has used so far, in ms; NaN without /proc. */
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Connections waiting to be accepted on the listening socket at 127.0.0.1:PORT (its receive
 * queue in /proc/net/tcp); NaN without /proc.
 */
function listenQueue(port) {
  try {
    const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n")) {
      const f = line.trim().split(/\s+/);
      if (f[1] === local && f[3] === "0A") return Number.parseInt(f[4].split(":")[1], 16);
    }
  } catch {}
  return Number.NaN;
}

async function main() {
  const smoke = process.argv.includes("--smoke");
  const connections = Number(option("connections") ?? (smoke ? 200 : 1000));
  const bad = Number(option("bad") ?? Math.round(connections / 10));
  const good = connections - bad;
  const floodMs = Number(option("duration") ?? (smoke ? 1000 : 10_000));
  // An upper bound: the load generator stops once the server refuses connections (it is gone).
  const shutdownFloodMs = 20_000;
  const sigtermAfterMs = smoke ? 700 : 2000;
  const preMs = smoke ? 1000 : 2000;
  const postMs = smoke ? 2000 : 5000;
  const probeEveryMs = 50;
  const here = fileURLToPath(new URL(".", import.meta.url));
  const bin = join(here, "../packages/cli/bin/keyhole.js");
  const dir = mkdtempSync(join(tmpdir(), "keyhole-bench-flood-"));
  // Fast Argon2 for the owner key file (test-only, needs KEYHOLE_TEST=1): it only shortens the
  // setup; nothing measured unlocks the owner key.
  const ownerEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    KEYHOLE_HOME: join(dir, "owner"),
    KEYHOLE_PASSPHRASE: "benchmark passphrase",
    KEYHOLE_TEST: "1",
    KEYHOLE_TEST_ARGON2_FAST: "1",
  };
  const { formatAgentAuthorization, parseToken } = await import("@keyhole/core");
  const keyhole = (args, input = "") =>
    execFileSync(process.execPath, [bin, ...args], {
      env: ownerEnv,
      input,
      stdio: ["pipe", "pipe", "pipe"],
    }).toString();

  /** Starts `keyhole server` on DATA (stderr drained, kept for the report). */
  function startServer(data, fresh) {
    const child = spawn(
      process.execPath,
      [
        bin,
        "server",
        "--data-dir",
        data,
        "--port",
        "0",
        "--health-port",
        "0",
        "--log-level",
        "error",
      ],
      { env: ownerEnv, stdio: ["ignore", "pipe", "pipe"] },
    );
    let seen = "";
    const exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal, at: now() })),
    );
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server not ready: ${seen}`)), 30_000);
      const onData = (chunk) => {
        seen += chunk;
        const addr = seen.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        const code = seen.match(/bootstrap code: (\S+)/);
        const healthUrl = seen.match(/health checks on (http:\/\/127\.0\.0\.1:\d+)/);
        if (!addr || !healthUrl || (fresh && !code)) return;
        clearTimeout(timer);
        resolve({
          child,
          addr: addr[1],
          healthUrl: healthUrl[1],
          code: code?.[1],
          exited,
          log: () => seen,
        });
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      exited.then(({ code }) => reject(new Error(`server exited ${code}: ${seen}`)));
    });
  }

  async function authorizationOf(tokenFile) {
    const token = parseToken(readFileSync(tokenFile, "utf8").trim());
    const { authKey } = await token.deriveKeys();
    const header = formatAgentAuthorization(token.tokenId, authKey);
    token.destroy();
    return header;
  }

  const servers = [];
  const report = {};
  try {
    // Phase 1: the flood.
    const server = await startServer(join(dir, "data"), true);
    servers.push(server);
    ownerEnv.KEYHOLE_ADDR = server.addr;
    keyhole(["init", "--bootstrap-code", server.code]);
    keyhole(["secret", "set", "demo"], "x".repeat(64));
    keyhole([
      "agent",
      "create",
      "flood",
      "--grant",
      "demo",
      "--token-file",
      join(dir, "flood.token"),
    ]);
    keyhole([
      "agent",
      "create",
      "probe",
      "--grant",
      "demo",
      "--token-file",
      join(dir, "probe.token"),
    ]);
    const floodAuth = await authorizationOf(join(dir, "flood.token"));
    const probeAuth = await authorizationOf(join(dir, "probe.token"));
    const readUrl = `${server.addr}/v1/agent/secrets/demo`;
    const pid = server.child.pid;
    process.stderr.write(`flood: server pid ${pid} at ${server.addr}\n`);
    const loadStart = loadavg();

    const prober = runChild(
      "probe",
      {
        url: readUrl,
        healthUrl: server.healthUrl,
        authorization: probeAuth,
        intervalMs: probeEveryMs,
      },
      { stdinOpen: true },
    );
    await sleep(preMs);
    const rssBefore = procStatus(pid, "VmRSS");
    const cpuBefore = cpuMs(pid);
    const port = Number(new URL(server.addr).port);
    const queue = [];
    const sampler = setInterval(() => queue.push(listenQueue(port)), 100);
    const flood = await runChild("load", {
      url: readUrl,
      authorization: floodAuth,
      good,
      bad,
      durationMs: floodMs,
      record: false,
    }).result;
    clearInterval(sampler);
    const cpuUsed = cpuMs(pid) - cpuBefore;
    await sleep(postMs);
    prober.child.stdin.end();
    const probes = (await prober.result).samples;
    const rssPeak = procStatus(pid, "VmHWM");
    const rssAfter = procStatus(pid, "VmRSS");
    const alive = server.child.exitCode === null && server.child.signalCode === null;
    let auditVerify;
    try {
      auditVerify = keyhole(["audit", "verify", "--insecure-http"]).trim();
    } catch (error) {
      auditVerify = `FAILED: ${error.stderr?.toString() ?? error.message}`.trim();
    }
    const loadEnd = loadavg();

    const during = (s) => s[1] >= flood.start && s[1] < flood.end;
    const reads = probes.filter((s) => s[0] === "read");
    const health = probes.filter((s) => s[0] === "health");
    const preReads = reads.filter((s) => s[1] < flood.start && s[3] === 200).map((s) => s[2]);
    const baseP50 = quantile(preReads, 0.5);
    const healthDuring = health.filter(during);
    const readsDuring = reads.filter(during);
    // Recovery: from the flood's end until the first of 5 consecutive legitimate reads that
    // succeed within 2× the pre-flood median (probes started after the flood ended).
    const after = reads.filter((s) => s[1] >= flood.end).sort((a, b) => a[1] - b[1]);
    let recoveryMs = null;
    let recoveredAt5Ms = null;
    for (let i = 0; i + 5 <= after.length; i++) {
      const run = after.slice(i, i + 5);
      if (run.every((s) => s[3] === 200 && s[2] <= 2 * baseP50)) {
        recoveryMs = run[0][1] + run[0][2] - flood.end;
        recoveredAt5Ms = run[4][1] + run[4][2] - flood.end;
        break;
      }
    }
    const answered = Object.values(flood.statuses).reduce((a, b) => a + b, 0);
    const seconds = (flood.end - flood.start) / 1000;
    const hist = { 200: 0, 401: 0, 429: 0, 503: 0, "other 4xx": 0, "other 5xx": 0 };
    for (const [code, n] of Object.entries(flood.statuses)) {
      const c = Number(code);
      if (c in hist) hist[c] += n;
      else if (c >= 500) hist["other 5xx"] += n;
      else hist["other 4xx"] += n;
    }
    report.flood = {
      connections,
      good,
      bad,
      durationMs: floodMs,
      seconds,
      sent: flood.sent,
      newConnections: flood.newConnections,
      answered,
      answeredPerSecond: answered / seconds,
      statuses: hist,
      connectionErrors: flood.errors,
      missingRetryAfter: flood.missingRetryAfter,
      floodReadP50: flood.p50,
      floodReadP99: flood.p99,
      serverCpuShare: cpuUsed / (flood.end - flood.start),
      listenQueueP50: quantile(queue, 0.5),
      listenQueueMax: Math.max(...queue),
      health: healthStats(healthDuring, flood.start),
      healthKept: healthStats(
        probes.filter((x) => x[0] === "health-kept").filter(during),
        flood.start,
      ),
      healthPort: healthStats(
        probes.filter((x) => x[0] === "health-port").filter(during),
        flood.start,
      ),
      legit: {
        probes: readsDuring.length,
        ok: readsDuring.filter((s) => s[3] === 200).length,
        outcomes: countBy(readsDuring.map((s) => s[3])),
        p50: quantile(
          readsDuring.map((s) => s[2]),
          0.5,
        ),
        preFloodP50: baseP50,
      },
      recoveryMs,
      recoveredAt5Ms,
      rssBeforeMiB: rssBefore,
      rssPeakMiB: rssPeak,
      rssAfterMiB: rssAfter,
      serverAlive: alive,
      auditVerify,
      loadStart,
      loadEnd,
    };

    // Phase 2: SIGTERM mid-flood, on a fresh server over the same data.
    server.child.kill("SIGTERM");
    await server.exited;
    const second = await startServer(join(dir, "data"), false);
    servers.push(second);
    const url2 = `${second.addr}/v1/agent/secrets/demo`;
    const load2 = runChild("load", {
      url: url2,
      authorization: floodAuth,
      good,
      bad,
      durationMs: shutdownFloodMs,
      record: true,
    });
    await sleep(sigtermAfterMs);
    const sigterm = now();
    second.child.kill("SIGTERM");
    const exit = await second.exited;
    const flood2 = await load2.result;
    report.shutdown = summariseShutdown(flood2.records, sigterm, exit);
    report.shutdown.sigtermAfterMs = sigtermAfterMs;
    report.shutdown.exitLog = second
      .log()
      .split("\n")
      .filter((l) => l !== "" && !/bootstrap|listening|claim this|also in/.test(l))
      .slice(-5);
  } finally {
    for (const s of servers) if (s.child.exitCode === null) s.child.kill("SIGKILL");
    await sleep(200);
    rmSync(dir, { recursive: true, force: true });
  }

  const cpu = cpus();
  const machine = `${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const date = new Date().toISOString();
  const f = report.flood;
  const s = report.shutdown;
  const ms = (v) => (v === null || Number.isNaN(v) ? "—" : `${v.toFixed(1)} ms`);
  const mib = (v) => `${v.toFixed(0)} MiB`;
  const rows = [
    [
      "flood",
      `${f.connections} keep-alive connections (${f.good} good reads, ${f.bad} bad tokens), ${f.seconds.toFixed(1)} s, 1 load process`,
    ],
    [
      "requests answered",
      `${f.answered} (${Math.round(f.answeredPerSecond)}/s); ${f.sent - f.answered} without an answer ${JSON.stringify(f.connectionErrors)}; ${f.newConnections} connections opened`,
    ],
    [
      "status 200 / 401 / 429 / 503",
      `${f.statuses[200]} / ${f.statuses[401]} / ${f.statuses[429]} / ${f.statuses[503]}`,
    ],
    ["status other 4xx / other 5xx", `${f.statuses["other 4xx"]} / ${f.statuses["other 5xx"]}`],
    ["429/503 without Retry-After", String(f.missingRetryAfter)],
    ["flood's own reads p50 / p99", `${ms(f.floodReadP50)} / ${ms(f.floodReadP99)}`],
    ["server CPU during flood", `${(f.serverCpuShare * 100).toFixed(0)}% of one core`],
    [
      "connections waiting to be accepted (listen queue, backlog 511)",
      `median ${f.listenQueueP50}, max ${f.listenQueueMax} (sampled every 100 ms)`,
    ],
    ...[
      ["/healthz, new connection each", f.health],
      ["/healthz, kept-alive connection", f.healthKept],
      ["/healthz on --health-port, new connection each", f.healthPort],
    ].flatMap(([name, h]) => [
      [`${name}: p50 / p99 / max during flood`, `${ms(h.p50)} / ${ms(h.p99)} / ${ms(h.max)}`],
      [
        `${name}: failures during flood`,
        `${h.failures} of ${h.probes} ${JSON.stringify(h.outcomes)}${h.failures > 0 ? `, first sent ${h.failedAtMs[0]} ms into the flood` : ""}`,
      ],
    ]),
    [
      "legit agent read during flood",
      `${f.legit.ok} of ${f.legit.probes} succeeded ${JSON.stringify(f.legit.outcomes)}, p50 ${ms(f.legit.p50)}`,
    ],
    ["legit read pre-flood p50", ms(f.legit.preFloodP50)],
    [
      "recovery (first of 5 probes ≤ 2× pre-flood p50)",
      f.recoveryMs === null
        ? `not within ${postMs} ms`
        : `${ms(f.recoveryMs)} (5th probe done at ${ms(f.recoveredAt5Ms)}; probes every ${probeEveryMs} ms)`,
    ],
    [
      "server RSS before / peak (VmHWM) / after",
      `${mib(f.rssBeforeMiB)} / ${mib(f.rssPeakMiB)} / ${mib(f.rssAfterMiB)}`,
    ],
    ["server alive after flood", f.serverAlive ? "yes" : "NO"],
    ["keyhole audit verify", f.auditVerify],
    [
      "SIGTERM mid-flood",
      `after ${s.sigtermAfterMs} ms of flood; exit code ${s.exitCode}${s.exitSignal ? ` (signal ${s.exitSignal})` : ""}, exited ${ms(s.exitMs)} after the signal`,
    ],
    [
      "requests in flight at SIGTERM",
      `${s.inFlight}: ${s.inFlightAnswered} answered ${JSON.stringify(s.inFlightStatuses)}, ${s.inFlightCut} cut ${JSON.stringify(s.inFlightErrors)}`,
    ],
    [
      "  of them fully written before the signal, cut",
      `${s.writtenCut}: ${s.writtenCutAtExit} when the server exited, ${s.writtenCut - s.writtenCutAtExit} earlier; ${s.writtenCutReused} on a reused keep-alive socket`,
    ],
    [
      "requests cut by the forced close at exit",
      `${s.cutAtExit} (${s.cutAtExitReused} on a keep-alive connection the server had accepted)`,
    ],
    [
      "answers / resets after SIGTERM",
      `last answer at ${ms(s.lastAnsweredMs)}; resets from ${ms(s.firstCutMs)} to ${ms(s.lastCutMs)}`,
    ],
    [
      "requests started after SIGTERM",
      `${s.afterAnswered} answered ${JSON.stringify(s.afterStatuses)}, ${s.afterCut} not ${JSON.stringify(s.afterErrors)}`,
    ],
  ];
  console.log(
    `flood benchmark: ${machine}, ${date}; load average ${loadavgText(f.loadStart)} → ${loadavgText(f.loadEnd)}`,
  );
  console.log(`command: node bench/flood.mjs ${process.argv.slice(2).join(" ")}\n`);
  console.log("| measure | value |\n|---|---|");
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
  const problems = [];
  if (f.statuses["other 5xx"] > 0) problems.push("other 5xx answers");
  if (f.missingRetryAfter > 0) problems.push("429/503 without Retry-After");
  // Timing goals fail a full run only: a smoke run on a busy machine checks correctness.
  if (f.healthKept.failures + f.healthPort.failures > 0 && !smoke)
    problems.push("health check failures");
  if (!f.serverAlive) problems.push("server died");
  if (!f.auditVerify.startsWith("audit log ok")) problems.push("audit verify failed");
  if (f.recoveryMs === null && !smoke) problems.push("no recovery");
  if (s.exitCode !== 0) problems.push("shutdown exit code not 0");
  if (problems.length > 0) {
    console.log(`\nPROBLEMS: ${problems.join(", ")}`);
    process.exitCode = 1;
  }
  if (!smoke) {
    const file = join(here, "results", `flood-${date.replace(/[:.]/g, "-")}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ machine, date, argv: process.argv.slice(2), ...report }, null, 2)}\n`,
    );
    console.log(`\nwritten ${file}`);
  }
}

/** Latency and failures of health probes sent during the flood. */
function healthStats(samples, start) {
  const latencies = samples.map((s) => s[2]);
  const failed = samples.filter((s) => s[3] !== 200);
  return {
    probes: samples.length,
    failures: failed.length,
    outcomes: countBy(samples.map((s) => s[3])),
    failedAtMs: failed.map((s) => Math.round(s[1] - start)),
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: Math.max(...latencies),
  };
}

function loadavgText(l) {
  return l.map((v) => v.toFixed(2)).join(" ");
}

function countBy(values) {
  const out = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** What happened to the requests around the SIGTERM (records from the load child). */
function summariseShutdown(records, sigterm, exit) {
  const inFlight = records.filter(([started, , ended]) => started < sigterm && ended >= sigterm);
  const after = records.filter(([started]) => started >= sigterm);
  const isStatus = (r) => typeof r[3] === "number";
  const cut = inFlight.filter((r) => !isStatus(r));
  const writtenCut = cut.filter((r) => r[1] >= 0 && r[1] < sigterm);
  const atExit = records.filter((r) => !isStatus(r) && r[1] >= 0 && r[2] >= exit.at - 250);
  const cutTimes = records.filter((r) => !isStatus(r) && r[3] !== "ECONNREFUSED").map((r) => r[2]);
  const answeredTimes = records.filter(isStatus).map((r) => r[2]);
  return {
    lastAnsweredMs: Math.max(...answeredTimes) - sigterm,
    firstCutMs: cutTimes.length === 0 ? null : Math.min(...cutTimes) - sigterm,
    lastCutMs: cutTimes.length === 0 ? null : Math.max(...cutTimes) - sigterm,
    exitCode: exit.code,
    exitSignal: exit.signal,
    exitMs: exit.at - sigterm,
    requests: records.length,
    inFlight: inFlight.length,
    inFlightAnswered: inFlight.length - cut.length,
    inFlightStatuses: countBy(inFlight.filter(isStatus).map((r) => r[3])),
    inFlightCut: cut.length,
    inFlightErrors: countBy(cut.map((r) => r[3])),
    writtenCut: writtenCut.length,
    writtenCutReused: writtenCut.filter((r) => r[4] === 1).length,
    // Cut by the forced close of every connection (stop() in server.ts, 5 s after the signal).
    writtenCutAtExit: writtenCut.filter((r) => r[2] >= exit.at - 250).length,
    cutAtExit: atExit.length,
    cutAtExitReused: atExit.filter((r) => r[4] === 1).length,
    afterAnswered: after.filter(isStatus).length,
    afterStatuses: countBy(after.filter(isStatus).map((r) => r[3])),
    afterCut: after.filter((r) => !isStatus(r)).length,
    afterErrors: countBy(after.filter((r) => !isStatus(r)).map((r) => r[3])),
  };
}

const childSpec = () => JSON.parse(process.env.KEYHOLE_BENCH_SPEC ?? "null");
if (childRole === "load") await loadChild(childSpec());
else if (childRole === "probe") await probeChild(childSpec());
else await main();
