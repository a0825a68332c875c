#!/usr/bin/env node
import { spawn } from "node:child_process";
// The agent fetch on PostgreSQL, with one and three servers (issue 6), against the same fetch
// on SQLite and against a baseline read through the same driver, all in one run on this
// machine. A throwaway PostgreSQL 15 (scripts/pg-server.mjs) holds one vault; three
// `keyhole server`s (each its own data directory, the same pepper and audit key files, the URL
// in KEYHOLE_DATABASE_URL) serve it. The load is bench/load.mjs as in run.mjs (its own process,
// the agent's precomputed Authorization header on GET /v1/agent/secrets/demo, the spec on stdin);
// for three servers one load process spreads its connections evenly over them (connection i
// asks server i mod 3) and reports the total. Each round runs every scenario in turn:
//
//   baseline read, SQLite        bench/baseline-server.mjs (node:http + better-sqlite3)
//   Keyhole fetch, SQLite        one server, its own vault, as in run.mjs
//   baseline read, PostgreSQL    bench/baseline-pg-server.mjs: node:http + the `postgres` driver
//                                (pool of 10, as the store), one SELECT by key; no auth/audit
//   Keyhole fetch, PostgreSQL    one server, then three, on the one database
//   audit append alone           no HTTP: this process runs only the serial part of an audited
//                                fetch, the store's own audit append (BEGIN; the append function
//                                and COMMIT in one message) on a vault of its own, c at a time
//
// During the Keyhole runs on PostgreSQL this process samples pg_stat_activity every 10 ms: how
// often a server's backend holds the `audit_head` row lock (the serial section every audited
// operation passes through, docs/scaling.md), and how often it holds it while idle in its
// transaction, i.e. waiting for its Keyhole server to send the next statement (which the append
// in the database has made impossible; the column shows it stays 0). "lock µs/fetch"
// is that busy fraction divided by the fetch rate. CPU per request is from /proc: the serving
// processes (Keyhole servers or baseline), and PostgreSQL (postmaster and every backend, the
// sampler's own backend excluded), warm-up included in both.
//
//   node bench/postgres.mjs           c = 10 and 50, median of 3 runs × 3 s (about 2½ minutes)
//   node bench/postgres.mjs --smoke   c = 10, 1 run × 300 ms (keeps the script working)
//   node bench/postgres.mjs --profile DIR
//                                     also V8 CPU profiles of the Keyhole servers on PostgreSQL
//                                     (`node bench/cpuprofile-summary.mjs DIR`)
//
// Outside CI a machine without PostgreSQL 15 skips the benchmark with a notice, as npm test does.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { openPostgresStore } from "../packages/server/dist/store/postgres.js";
import { PgServerError, startPostgres } from "../scripts/pg-server.mjs";
import { startKeyholeServer } from "./keyhole-server.mjs";
import { runLoadAsync } from "./load-client.mjs";
import { setUpFetchVault } from "./seed.mjs";

const { values: options } = parseArgs({
  options: { smoke: { type: "boolean" }, profile: { type: "string" } },
});
const smoke = options.smoke === true;
const runs = smoke ? 1 : 3;
const durationMs = smoke ? 300 : 3000;
const warmupMs = smoke ? 100 : 500;
const levels = smoke ? [10] : [10, 50];
const SAMPLE_MS = 10;
const here = fileURLToPath(new URL(".", import.meta.url));
const require = createRequire(new URL("../packages/server/package.json", import.meta.url));
const postgres = require("postgres");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** User + system CPU time of a process, in ms (/proc, clock ticks of 10 ms); 0 once gone. */
function cpuMs(pid, { children = false } = {}) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    const own = Number(fields[11]) + Number(fields[12]);
    return (own + (children ? Number(fields[13]) + Number(fields[14]) : 0)) * 10;
  } catch {
    return 0;
  }
}

/**
 * PostgreSQL's CPU time in ms: the postmaster with the children it has reaped, plus every live
 * child (backends, WAL writer, checkpointer…) but `exclude` (the sampler's backend).
 */
function pgCpuMs(postmaster, exclude) {
  let total = cpuMs(postmaster, { children: true });
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || exclude.has(Number(name))) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1].split(" ");
      if (Number(fields[1]) === postmaster) total += (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // exited meanwhile: its time is in the postmaster's reaped children from now on
    }
  }
  return total;
}

/** A benchmark child (`node SCRIPT`) that prints `listening PORT`. */
function startBaseline(script, env) {
  const child = spawn(process.execPath, [join(here, script)], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let seen = "";
  return new Promise((resolve, reject) => {
    const onData = (chunk) => {
      seen += chunk;
      const port = seen.match(/listening (\d+)/);
      if (port) resolve({ child, exited, addr: `http://127.0.0.1:${port[1]}` });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (status) => reject(new Error(`${script} exited ${status}: ${seen}`)));
  });
}

async function stop({ child, exited }) {
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Samples the Keyhole servers' backends until the returned function is called. A backend holds
 * the chain head's row lock while it runs the message `SELECT … FROM keyhole_audit_append(…);
 * COMMIT` (postgres-db.ts), once it is no longer waiting for that lock, to the end of the
 * COMMIT. It can no longer hold it while idle in its transaction (the column stays, to show it).
 */
function sampleAuditLock(sql) {
  const s = { samples: 0, busy: 0, busyIdle: 0, waiters: 0, states: {} };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = performance.now();
      const rows = await sql`
        SELECT state, wait_event_type AS type, wait_event AS event, left(query, 200) AS query
        FROM pg_stat_activity WHERE application_name = 'keyhole-server'`;
      let active = 0;
      let idle = 0;
      for (const r of rows) {
        const inTx = r.state === "active" || r.state === "idle in transaction";
        const append = /keyhole_audit_append\(/.test(r.query);
        if (r.type === "Lock" && append) s.waiters++;
        const holds = inTx && append && r.type !== "Lock";
        if (holds && r.state === "active") active++;
        else if (holds) idle++;
        if (r.state === "active" || r.state === "idle in transaction") {
          const key = r.state === "active" ? `${r.type ?? "CPU"}:${r.event ?? ""}` : r.state;
          s.states[key] = (s.states[key] ?? 0) + 1;
        }
      }
      s.samples++;
      if (active + idle > 0) s.busy++;
      if (active === 0 && idle > 0) s.busyIdle++;
      const rest = SAMPLE_MS - (performance.now() - started);
      if (rest > 0) await sleep(rest);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return s;
  };
}

/**
 * The serial part of an audited fetch alone: the store's own audit append (`Store.appendAudit`:
 * BEGIN, then `keyhole_audit_append(…)` and COMMIT in one message, postgres-db.ts) on a vault
 * of its own in schema bench_append, `concurrency` appends in a closed loop in this process.
 */
async function appendProbe(url, concurrency) {
  const store = await openPostgresStore({
    url,
    schema: "bench_append",
    maxConnections: concurrency,
  });
  const counts = { errors: 0, sent: 0 };
  const draft = () => ({
    ts: Date.now(),
    requestId: randomBytes(12).toString("base64url"),
    actorType: "agent",
    actorId: "agt_benchmarkbenchmarkbench",
    action: "secret.read",
    result: "ok",
    agentId: "agt_benchmarkbenchmarkbench",
    secretId: "sec_benchmarkbenchmarkbench",
    secretVersion: 1,
    clientIp: "127.0.0.1",
    userAgent: "keyhole-sdk/0.1.0",
    detail: "",
  });
  const phase = async (ms, latencies) => {
    const until = performance.now() + ms;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          const t0 = performance.now();
          try {
            await store.appendAudit(draft());
            latencies?.push(performance.now() - t0);
          } catch {
            counts.errors++;
          }
          counts.sent++;
        }
      }),
    );
    return performance.now() - start;
  };
  try {
    await phase(warmupMs, null);
    counts.errors = 0;
    const latencies = [];
    const cpu = process.cpuUsage();
    const elapsed = await phase(durationMs, latencies);
    const used = process.cpuUsage(cpu);
    latencies.sort((a, b) => a - b);
    const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    return {
      requests: latencies.length,
      errors: counts.errors,
      rps: (latencies.length / elapsed) * 1000,
      p50: pick(0.5) ?? 0,
      p99: pick(0.99) ?? 0,
      max: latencies.at(-1) ?? 0,
      sent: counts.sent,
      // this process is the probe's client: its CPU over the measured phase, per append
      serverCpuUs: ((used.user + used.system) / Math.max(1, latencies.length)) | 0,
    };
  } finally {
    await store.close();
  }
}

let pg;
try {
  pg = await startPostgres({ settings: { track_wal_io_timing: "on" } });
} catch (error) {
  if (process.env.CI === "true" || !(error instanceof PgServerError)) throw error;
  console.log(`PostgreSQL benchmark skipped: ${error.message}`);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), "keyhole-pgbench-"));
const ownerEnv = (name) => ({
  PATH: process.env.PATH,
  HOME: dir,
  KEYHOLE_HOME: join(dir, name, "owner"),
  KEYHOLE_PASSPHRASE: "benchmark passphrase",
});
const started = [];
const pools = [];
const loadStart = loadavg();
try {
  const postmaster = Number(
    readFileSync(join(pg.dataDir, "postmaster.pid"), "utf8").split("\n")[0],
  );
  // The two keys every server on the database shares: 32 random bytes each, mode 0600.
  const pepperFile = join(dir, "pepper");
  const auditKeyFile = join(dir, "audit-key");
  writeFileSync(pepperFile, randomBytes(32), { mode: 0o600 });
  writeFileSync(auditKeyFile, randomBytes(32), { mode: 0o600 });
  const dataDir = (name) => {
    const path = join(dir, name);
    mkdirSync(path, { recursive: true, mode: 0o700 });
    return path;
  };

  const setupStart = performance.now();
  const track = async (promise) => {
    const server = await promise;
    started.push(server);
    return server;
  };
  const sqliteEnv = ownerEnv("sqlite");
  const pgEnv = ownerEnv("pg");
  const serverEnv = {
    ...pgEnv,
    KEYHOLE_DATABASE_URL: pg.url,
    ...(options.profile === undefined
      ? {}
      : {
          NODE_OPTIONS: `--import=${join(here, "cpu-profile-hook.mjs")}`,
          KEYHOLE_BENCH_CPU_PROF_DIR: options.profile,
        }),
  };
  const keyArgs = ["--pepper-file", pepperFile, "--audit-key-file", auditKeyFile];
  const baseSqlite = await track(startBaseline("baseline-server.mjs", { PATH: process.env.PATH }));
  const basePg = await track(
    startBaseline("baseline-pg-server.mjs", { PATH: process.env.PATH, BENCH_DATABASE_URL: pg.url }),
  );
  const khSqlite = await track(
    startKeyholeServer({ env: sqliteEnv, dataDir: dataDir("sqlite/data") }),
  );
  const { authorization: sqliteAuth } = await setUpFetchVault(
    sqliteEnv,
    khSqlite,
    dataDir("sqlite"),
  );
  // The first server migrates the database and is claimed; the other two join the vault.
  const pg1 = await track(
    startKeyholeServer({ env: serverEnv, dataDir: dataDir("pg/data-1"), extraArgs: keyArgs }),
  );
  const { authorization: pgAuth } = await setUpFetchVault(pgEnv, pg1, dataDir("pg"));
  const [pg2, pg3] = await Promise.all(
    [2, 3].map((n) =>
      track(
        startKeyholeServer({
          env: serverEnv,
          dataDir: dataDir(`pg/data-${n}`),
          fresh: false,
          extraArgs: keyArgs,
        }),
      ),
    ),
  );
  const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  pools.push(admin);
  await admin`CREATE SCHEMA bench_append`;
  const [{ pid: samplerPid }] = await admin`SELECT pg_backend_pid() AS pid`;
  const exclude = new Set([samplerPid]);
  const setupMs = performance.now() - setupStart;

  const fetchPath = "/v1/agent/secrets/demo";
  const SCENARIOS = [
    { key: "base-sqlite", label: "baseline read, SQLite", servers: 1, procs: [baseSqlite] },
    {
      key: "kh-sqlite",
      label: "Keyhole fetch, SQLite",
      servers: 1,
      procs: [khSqlite],
      spec: { url: `${khSqlite.addr}${fetchPath}`, headers: { authorization: sqliteAuth } },
    },
    { key: "base-pg", label: "baseline read, PostgreSQL", servers: 1, procs: [basePg], pg: true },
    {
      key: "kh-pg-1",
      label: "Keyhole fetch, PostgreSQL",
      servers: 1,
      procs: [pg1],
      pg: true,
      sample: true,
      spec: { url: `${pg1.addr}${fetchPath}`, headers: { authorization: pgAuth } },
    },
    {
      key: "kh-pg-3",
      label: "Keyhole fetch, PostgreSQL",
      servers: 3,
      procs: [pg1, pg2, pg3],
      pg: true,
      sample: true,
      spec: {
        urls: [pg1, pg2, pg3].map((s) => `${s.addr}${fetchPath}`),
        headers: { authorization: pgAuth },
      },
    },
    { key: "append", label: "audit append alone (SQL, no HTTP)", servers: "–", pg: true },
  ];
  SCENARIOS[0].spec = { url: `${baseSqlite.addr}/demo` };
  SCENARIOS[2].spec = { url: `${basePg.addr}/demo` };

  /** One run of one scenario at `concurrency`. */
  async function measure(sc, concurrency) {
    const procCpu = () => (sc.procs ?? []).reduce((sum, p) => sum + cpuMs(p.child.pid), 0);
    const cpu0 = procCpu();
    const pg0 = pgCpuMs(postmaster, exclude);
    if (sc.key === "append") {
      const result = await appendProbe(pg.url, concurrency);
      result.pgCpuUs = ((pgCpuMs(postmaster, exclude) - pg0) * 1000) / result.sent;
      return result;
    }
    let stopSampling;
    let timer;
    if (sc.sample) {
      // From the end of the load's warm-up (plus its start-up) to the end of the load.
      timer = setTimeout(() => {
        stopSampling = sampleAuditLock(admin);
      }, warmupMs + 150);
    }
    const result = await runLoadAsync({ ...sc.spec, concurrency, durationMs, warmupMs });
    clearTimeout(timer);
    const lock = stopSampling === undefined ? undefined : await stopSampling();
    result.serverCpuUs = ((procCpu() - cpu0) * 1000) / result.sent;
    if (sc.pg) result.pgCpuUs = ((pgCpuMs(postmaster, exclude) - pg0) * 1000) / result.sent;
    if (lock !== undefined && lock.samples > 0) {
      result.lockBusy = lock.busy / lock.samples;
      result.lockUs = (result.lockBusy * 1e6) / result.rps;
      result.lockIdleShare = lock.busy === 0 ? 0 : lock.busyIdle / lock.busy;
      result.lockWaiters = lock.waiters / lock.samples;
      result.states = lock.states;
      result.samples = lock.samples;
    }
    return result;
  }

  const results = new Map(SCENARIOS.map((sc) => [sc.key, new Map(levels.map((l) => [l, []]))]));
  for (const concurrency of levels) {
    for (let i = 0; i < runs; i++) {
      for (const sc of SCENARIOS) {
        results
          .get(sc.key)
          .get(concurrency)
          .push(await measure(sc, concurrency));
      }
    }
  }

  const KEYS = ["rps", "p50", "p99", "max", "errors", "serverCpuUs", "pgCpuUs"];
  const LOCK_KEYS = ["lockBusy", "lockUs", "lockIdleShare", "lockWaiters"];
  const rows = [];
  for (const concurrency of levels) {
    const m = new Map();
    for (const sc of SCENARIOS) {
      const list = results.get(sc.key).get(concurrency);
      const out = {};
      for (const key of [...KEYS, ...LOCK_KEYS]) {
        const values = list.map((r) => r[key]).filter((v) => v !== undefined);
        if (values.length > 0) out[key] = median(values);
      }
      // Where the servers' backends were, over all runs of the point (samples of each state).
      const states = {};
      for (const r of list) {
        for (const [k, v] of Object.entries(r.states ?? {})) states[k] = (states[k] ?? 0) + v;
      }
      const samples = list.reduce((sum, r) => sum + (r.samples ?? 0), 0);
      m.set(sc.key, { ...out, states, samples });
    }
    for (const sc of SCENARIOS) {
      const r = m.get(sc.key);
      rows.push({
        scenario: sc.label,
        key: sc.key,
        servers: sc.servers,
        concurrency,
        ...r,
        ratioSqlite: r.rps / m.get("kh-sqlite").rps,
        ratioPgBaseline: r.rps / m.get("base-pg").rps,
      });
    }
  }

  const round = (v) => (v === undefined ? "" : String(Math.round(v)));
  const percent = (v) => (v === undefined ? "" : `${Math.round(v * 100)}%`);
  const lines = [
    "| scenario | servers | c | req/s | p50 ms | p99 ms | max ms | errors | ratio to SQLite " +
      "Keyhole | ratio to PG baseline | server CPU µs/req | PostgreSQL CPU µs/req | audit lock " +
      "busy | lock µs/fetch | of it idle in tx |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${r.servers} | ${r.concurrency} | ${Math.round(r.rps)} | ` +
        `${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.errors} | ` +
        `${r.ratioSqlite.toFixed(2)}× | ${r.ratioPgBaseline.toFixed(2)}× | ` +
        `${round(r.serverCpuUs)} | ${round(r.pgCpuUs)} | ${percent(r.lockBusy)} | ` +
        `${round(r.lockUs)} | ${percent(r.lockIdleShare)} |`,
    );
  }
  const stateLines = rows
    .filter((r) => r.samples > 0)
    .map((r) => {
      const total = Object.values(r.states).reduce((a, b) => a + b, 0);
      const top = Object.entries(r.states)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([k, v]) => `${k} ${Math.round((v / total) * 100)}%`)
        .join(", ");
      const busy = (total / r.samples).toFixed(1);
      const point = `${r.servers} server(s), c=${r.concurrency}`;
      return `- ${point}: ${busy} backends in a transaction on average; ${top}`;
    });

  // Every server's backends exit when it stops, flushing their statistics: then the WAL's fsync
  // count and time over the whole run (track_wal_io_timing) and the audited fetches it served.
  await Promise.all(started.splice(0).map(stop));
  await sleep(500);
  const [wal] =
    await admin`SELECT wal_sync, wal_sync_time, wal_records, wal_bytes FROM pg_stat_wal`;
  const [{ n: fetches }] = await admin`SELECT count(*)::int AS n FROM public.audit`;
  const [{ n: appends }] = await admin`SELECT count(*)::int AS n FROM bench_append.audit`;
  const walSummary = {
    fsyncs: Number(wal.wal_sync),
    fsyncMs: Number(wal.wal_sync_time),
    records: Number(wal.wal_records),
    bytes: Number(wal.wal_bytes),
    auditedFetches: fetches,
    probeAppends: appends,
  };

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`;
  const date = new Date().toISOString();
  const loadEnd = loadavg();
  console.log(
    `${machine}, PostgreSQL 15, ${date}, ${runs} run(s) × ${durationMs} ms per point, ` +
      `scenarios interleaved; set-up ${Math.round(setupMs)} ms; load average ` +
      `${loadStart[0].toFixed(2)} at start, ${loadEnd[0].toFixed(2)} at end\n`,
  );
  console.log(lines.join("\n"));
  console.log(`\nThe Keyhole servers' PostgreSQL backends (samples every ${SAMPLE_MS} ms):`);
  console.log(stateLines.join("\n"));
  const commits = walSummary.auditedFetches + walSummary.probeAppends;
  console.log(
    `\nWAL over the run: ${walSummary.fsyncs} fsyncs for ${commits} audited commits ` +
      `(${(walSummary.fsyncs / Math.max(1, commits)).toFixed(2)} per commit), ` +
      `${(walSummary.fsyncMs / Math.max(1, walSummary.fsyncs)).toFixed(3)} ms each on average, ` +
      `${(walSummary.bytes / Math.max(1, commits)).toFixed(0)} WAL bytes per commit`,
  );
  if (!smoke) {
    const file = join(here, "results", `postgres-${date.replace(/[:.]/g, "-")}.json`);
    const result = {
      machine,
      date,
      loadavg: { start: loadStart, end: loadEnd },
      runs,
      durationMs,
      warmupMs,
      setupMs,
      rows,
      wal: walSummary,
      raw: Object.fromEntries([...results].map(([k, byLevel]) => [k, Object.fromEntries(byLevel)])),
    };
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`\nwritten ${file}`);
  }
  // As in scale.mjs: a 503 is a server shedding an overlong event-loop turn on a busy machine.
  // The full run fails on any error, the smoke run only when a point got no answer at all.
  const served = [...results.values()].every((byLevel) =>
    [...byLevel.values()].every((list) => list.every((r) => r.requests > r.errors)),
  );
  if (!served || (!smoke && rows.some((r) => r.errors > 0))) process.exitCode = 1;
} finally {
  await Promise.all(started.map(stop));
  await Promise.all(pools.map((sql) => sql.end({ timeout: 1 }).catch(() => {})));
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
