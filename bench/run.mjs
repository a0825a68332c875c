#!/usr/bin/env node
// The fetch benchmark: the same loopback load against a baseline server (node:http +
// better-sqlite3, no auth/audit/crypto) and against Keyhole's agent fetch route, in one run, so
// the ratio says what authentication, authorization and the audited read cost on this machine.
// Then the SDK's end-to-end get() (verify + decrypt), sequential.
//
// Then the fetch in the store alone (bench/store-fetch.mjs, no HTTP), the owner operations
// (bench/owner-ops.mjs: `secret set` and `agent rotate` against many agents and grants), the
// fetch against large databases (bench/scale.mjs), the fetch on PostgreSQL with one and three
// servers (bench/postgres.mjs; skipped without PostgreSQL 15 outside CI), the SDK's cold start
// (bench/cold-start.mjs) and the broker benchmark (bench/broker.mjs, its own processes): direct
// vs through `keyhole broker`.
// The smoke run also runs the flood benchmark (bench/flood.mjs --smoke).
//
//   npm run bench                     3 s per point, median of 3 runs (all scripts: about 12–15
//                                     minutes, of which owner-ops ~2 and scale ~4–6)
//   node bench/run.mjs --smoke        a few hundred ms per point, 1 run (keeps the script working)
//   node bench/run.mjs --fetch-only   the fetch benchmark alone (none of the other scripts)
//   node bench/run.mjs --skip SCRIPT  leaves bench/SCRIPT out (repeatable)
//   node bench/run.mjs --fetch-only --profile DIR
//                                     also writes a V8 CPU profile of the Keyhole server to DIR
//                                     (summarise it: `node bench/cpuprofile-summary.mjs DIR`)
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runLoad } from "./load-client.mjs";
import { setUpFetchVault } from "./seed.mjs";

const smoke = process.argv.includes("--smoke");
const fetchOnly = process.argv.includes("--fetch-only");
const profileAt = process.argv.indexOf("--profile");
const profileDir = profileAt < 0 ? null : process.argv[profileAt + 1];
if (profileAt >= 0 && (profileDir === undefined || profileDir.startsWith("--"))) {
  console.error("--profile needs a directory");
  process.exit(2);
}
const runs = smoke ? 1 : 3;
const durationMs = smoke ? 300 : 3000;
const levels = smoke ? [1, 10] : [1, 10, 50, 100];
const here = fileURLToPath(new URL(".", import.meta.url));
const bin = join(here, "../packages/cli/bin/keyhole.js");
const dir = mkdtempSync(join(tmpdir(), "keyhole-bench-"));
const env = {
  PATH: process.env.PATH,
  HOME: dir,
  KEYHOLE_HOME: join(dir, "owner"),
  KEYHOLE_PASSPHRASE: "benchmark passphrase",
};

function startChild(args, pattern) {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let seen = "";
  return new Promise((resolve, reject) => {
    const onData = (chunk) => {
      seen += chunk;
      const match = seen.match(pattern);
      if (match) resolve({ child, match, seen: () => seen });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`exited ${code}: ${seen}`)));
  });
}

const load = (url, headers, concurrency) =>
  runLoad({ url, headers, concurrency, durationMs, warmupMs: smoke ? 100 : 500 });

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
function medianOf(results) {
  const out = {};
  for (const key of ["rps", "p50", "p99", "max", "errors"])
    out[key] = median(results.map((r) => r[key]));
  return out;
}

const baseline = await startChild([join(here, "baseline-server.mjs")], /listening (\d+)/);
const keyholeServer = await startChild(
  [
    ...(profileDir === null ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`]),
    bin,
    "server",
    "--data-dir",
    join(dir, "data"),
    "--port",
    "0",
    "--log-level",
    "error",
    "--metrics",
  ],
  /bootstrap code: (\S+)/,
);

/** The store's write, commit and fsync counters from the server's `/metrics`. */
async function writeCounters(addr) {
  // A new connection each time: a pooled one may have been closed by the server's idle timeout.
  const text = await (await fetch(`${addr}/metrics`, { headers: { connection: "close" } })).text();
  const read = (name) => Number(text.match(new RegExp(`^${name} (\\d+)$`, "m"))?.[1] ?? NaN);
  return {
    writes: read("keyhole_store_writes_total"),
    commits: read("keyhole_store_commits_total"),
    fsyncs: read("keyhole_store_fsyncs_total"),
  };
}
try {
  const addr = keyholeServer.seen().match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)[1];
  const server = { addr, code: keyholeServer.match[1] };
  const { authorization, tokenFile } = await setUpFetchVault(env, server, dir);

  const rows = [];
  for (const concurrency of levels) {
    const base = [];
    const kh = [];
    const before = await writeCounters(addr);
    for (let i = 0; i < runs; i++) {
      base.push(load(`http://127.0.0.1:${baseline.match[1]}/demo`, {}, concurrency));
      kh.push(load(`${addr}/v1/agent/secrets/demo`, { authorization }, concurrency));
    }
    const after = await writeCounters(addr);
    // Every audited fetch is one write; group commit shares commits and fsyncs among them.
    const fetches = after.writes - before.writes;
    const perFetch = (key) => (after[key] - before[key]) / fetches;
    const b = medianOf(base);
    const k = medianOf(kh);
    rows.push({ scenario: "baseline read", concurrency, ...b });
    rows.push({
      scenario: "agent fetch (server)",
      concurrency,
      ...k,
      ratio: k.rps / b.rps,
      fsyncsPerFetch: perFetch("fsyncs"),
      commitsPerFetch: perFetch("commits"),
    });
  }
  const sdk = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(
      process.execPath,
      [join(here, "sdk-get.mjs"), addr, tokenFile, "demo", String(durationMs)],
      { env, cwd: join(here, "..") },
    );
    sdk.push(JSON.parse(out.toString()));
  }
  rows.push({ scenario: "SDK get() end to end", concurrency: 1, ...medianOf(sdk) });

  const header =
    "| scenario | c | req/s | p50 ms | p99 ms | max ms | errors | ratio to baseline | fsyncs per fetch |";
  const lines = [header, "|---|---|---|---|---|---|---|---|---|"];
  for (const r of rows) {
    const ratio = r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}×`;
    const fsyncs = r.fsyncsPerFetch === undefined ? "" : r.fsyncsPerFetch.toFixed(3);
    lines.push(
      `| ${r.scenario} | ${r.concurrency} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ${r.errors} | ${ratio} | ${fsyncs} |`,
    );
  }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`;
  console.log(
    `${machine}, ${new Date().toISOString()}, ${runs} run(s) × ${durationMs} ms per point\n`,
  );
  console.log(lines.join("\n"));
  if (!smoke) {
    const file = join(here, "results", `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ machine, date: new Date().toISOString(), runs, durationMs, rows }, null, 2)}\n`,
    );
    console.log(`\nwritten ${file}`);
  }
  if (rows.some((r) => r.errors > 0)) process.exitCode = 1;
} finally {
  baseline.child.kill("SIGTERM");
  keyholeServer.child.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 300));
  rmSync(dir, { recursive: true, force: true });
}

/** What failed, named again at the very end (a test shows only the tail of the output). */
const failures = [];
if (process.exitCode === 1) failures.push("the fetch benchmark (errors in its table)");

/** Scripts left out with `--skip SCRIPT` (the CI smoke test runs bench/postgres.mjs on its own). */
const skipped = new Set(
  process.argv.flatMap((arg, i) => (process.argv[i - 1] === "--skip" ? [arg] : [])),
);

/** Runs `bench/SCRIPT` (with `--smoke` in the smoke run), its output inline; a failure fails us. */
function runScript(script) {
  if (skipped.has(script)) return;
  console.log("");
  const args = [join(here, script), ...(smoke ? ["--smoke"] : [])];
  const child = spawnSync(process.execPath, args, { stdio: "inherit" });
  if (child.status !== 0) {
    process.exitCode = 1;
    failures.push(`bench/${script} (exit ${child.status ?? child.signal})`);
  }
}

if (!fetchOnly) {
  // The full audit-verify run takes about 9 minutes: `node bench/audit-verify.mjs` on its own.
  if (smoke) runScript("audit-verify.mjs");
  runScript("store-fetch.mjs");
  runScript("owner-ops.mjs");
  runScript("scale.mjs");
  runScript("postgres.mjs");
  runScript("cold-start.mjs");
  runScript("broker.mjs");
}

// The flood (bench/flood.mjs) saturates the machine for about a minute: in the smoke run only
// (`node bench/flood.mjs` alone for the full one).
if (smoke && !fetchOnly) runScript("flood.mjs");
if (failures.length > 0) console.error(`\nfailed: ${failures.join("; ")}`);
