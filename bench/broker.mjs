#!/usr/bin/env node
// The broker benchmark: the same loopback load against a local upstream (bench/upstream.mjs)
// called directly and through a real `keyhole broker` process, in one run, so the difference says
// what the broker adds on this machine. The vault (`keyhole server`) runs on the same machine. A
// bare node:http proxy (bench/bare-proxy.mjs) shows what any extra hop costs here.
// Two broker modes: no cache (one vault fetch + HPKE open per call, the default) and
// `--cache-ttl 60s`. Plain JSON and server-sent events (time to first byte measured).
//
//   node bench/broker.mjs              3 s per point, median of 3 runs, levels 1, 10, 50
//   node bench/broker.mjs --smoke      a few hundred ms per point, 1 run, levels 1, 10
//   node bench/broker.mjs --direct-only   direct and bare proxy only (no keyhole processes)
//   --levels=1,10 --runs=N --duration=MS --kinds=plain,stream   narrow a run (for profiling)
//   --log-file     brokers log calls with `--log FILE` (default: their stderr, sent to a file)
//   --profile      run the brokers as bench/broker-profile.mjs under --cpu-prof (the command
//                  refuses debugger flags) and print where their CPU time went
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatSummary, summarise } from "./cpuprofile-summary.mjs";
import { runLoad } from "./load-client.mjs";

const smoke = process.argv.includes("--smoke");
const directOnly = process.argv.includes("--direct-only");
const option = (name) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const numbers = (text) => text?.split(",").map(Number);
const runs = Number(option("runs") ?? (smoke ? 1 : 3));
const durationMs = Number(option("duration") ?? (smoke ? 300 : 3000));
const warmupMs = smoke ? 100 : 500;
const levels = numbers(option("levels")) ?? (smoke ? [1, 10] : [1, 10, 50]);
const kindNames = option("kinds")?.split(",") ?? ["plain", "stream"];
const profile = process.argv.includes("--profile");
const logToFile = process.argv.includes("--log-file");
const profileDir = profile ? mkdtempSync(join(tmpdir(), "keyhole-broker-profile-")) : null;
const streamEvents = 20;
const streamGapMs = 1;
const here = fileURLToPath(new URL(".", import.meta.url));
const bin = join(here, "../packages/cli/bin/keyhole.js");
const dir = mkdtempSync(join(tmpdir(), "keyhole-bench-broker-"));
const secretName = "up-key";
const secret = `sk-bench-${randomBytes(24).toString("base64url")}`;
// The owner's commands: fast Argon2 for the owner key file (test-only, needs KEYHOLE_TEST=1). It
// only shortens the setup; nothing measured below unlocks the owner key.
const ownerEnv = {
  PATH: process.env.PATH,
  HOME: dir,
  KEYHOLE_HOME: join(dir, "owner"),
  KEYHOLE_PASSPHRASE: "benchmark passphrase",
  KEYHOLE_TEST: "1",
  KEYHOLE_TEST_ARGON2_FAST: "1",
};
const children = [];

/**
 * Spawns a long-lived child and resolves once `ready(stdout, stderr)` returns a value. With
 * `stderrFile` the child's stderr goes straight to that file (read back while waiting), so a busy
 * log costs the child one write to the page cache and wakes nobody up.
 */
function startChild(args, env, ready, { stderrFile, timeoutMs = 30_000 } = {}) {
  const errFd = stderrFile === undefined ? "pipe" : openSync(stderrFile, "a", 0o600);
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", errFd] });
  if (typeof errFd === "number") closeSync(errFd);
  children.push(child);
  let out = "";
  let err = "";
  return new Promise((resolve, reject) => {
    const poll = stderrFile === undefined ? null : setInterval(() => check(), 20);
    const stop = () => {
      clearTimeout(timer);
      if (poll !== null) clearInterval(poll);
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`not ready: ${args.join(" ")}\n${err}`));
    }, timeoutMs);
    function check() {
      if (stderrFile !== undefined) err = readFileSync(stderrFile, "utf8");
      const value = ready(out, err);
      if (value === undefined) return;
      stop();
      // Stop collecting, keep draining: a full pipe would stall the child.
      child.stdout.removeAllListeners("data").resume();
      child.stderr?.removeAllListeners("data").resume();
      resolve({ child, ...value });
    }
    child.stdout.on("data", (chunk) => {
      out += chunk;
      check();
    });
    child.stderr?.on("data", (chunk) => {
      err += chunk;
      check();
    });
    child.on("exit", (code) => {
      stop();
      if (stderrFile !== undefined) err = readFileSync(stderrFile, "utf8");
      reject(new Error(`${args[1] ?? args[0]} exited ${code}: ${err}${out}`));
    });
  });
}

function keyhole(args, input = "") {
  return execFileSync(process.execPath, [bin, ...args], {
    env: ownerEnv,
    input,
    stdio: ["pipe", "pipe", "pipe"],
  }).toString();
}

/** CPU time (user + system, all threads) a process has used so far, in ms; NaN without /proc. */
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // CLK_TCK is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

/** One load run; `cpuUs` is the proxy's CPU time per request (warm-up included in both). */
function load(url, headers, concurrency, pids = []) {
  const before = pids.map(cpuMs);
  const result = runLoad({ url, headers, concurrency, durationMs, warmupMs });
  const used = pids.map((pid, i) => cpuMs(pid) - before[i]);
  result.cpuUs = pids.length === 0 ? Number.NaN : (used[0] / result.sent) * 1000;
  result.vaultCpuUs = pids.length < 2 ? Number.NaN : (used[1] / result.sent) * 1000;
  return result;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
function medianOf(results) {
  const out = {};
  for (const key of ["rps", "p50", "p99", "max", "ttfb50", "errors", "cpuUs", "vaultCpuUs"])
    out[key] = median(results.map((r) => r[key]));
  return out;
}

// The call log goes to stderr (the default, as under `keyhole run`), here a file;
// `--log-file` sends it with `--log FILE` instead (the product's own asynchronous file stream).
async function startBroker(upstreamPort, tokenFile, addr, ttlMs, logName) {
  const route = `up=http://127.0.0.1:${upstreamPort},secret=${secretName},header=Authorization: Bearer {{secret}}`;
  const logFile = logToFile ? join(dir, logName) : null;
  const stderrFile = join(dir, `${logName}.stderr`);
  const args = profile
    ? [
        "--cpu-prof",
        `--cpu-prof-dir=${join(profileDir, logName.replace(/\.log$/, ""))}`,
        join(here, "broker-profile.mjs"),
        tokenFile,
        addr,
        route,
        String(ttlMs),
        logFile ?? "-",
      ]
    : [
        bin,
        "broker",
        "--token-file",
        tokenFile,
        "--addr",
        addr,
        "--listen",
        "127.0.0.1:0",
        "--allow-plain-http-upstream",
        "--route",
        route,
        ...(logFile === null ? [] : ["--log", logFile]),
        ...(ttlMs > 0 ? ["--cache-ttl", `${ttlMs / 1000}s`] : []),
      ];
  const env = { PATH: process.env.PATH, HOME: dir, KEYHOLE_TEST: "1" };
  return startChild(
    args,
    env,
    (out, err) => {
      const listening = err.match(/broker listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const base = out.match(/^UP_BASE_URL=(\S+)$/m);
      const key = out.match(/^UP_API_KEY=(khc_\S+)$/m);
      if (!listening || !base || !key) return undefined;
      return { baseUrl: base[1], capability: key[1], logFile: logFile ?? stderrFile };
    },
    { stderrFile },
  );
}

const loadStart = loadavg();
const upstream = await startChild(
  [join(here, "upstream.mjs"), String(streamEvents), String(streamGapMs)],
  { PATH: process.env.PATH, UPSTREAM_SECRET: secret },
  (out) => {
    const m = out.match(/listening (\d+)/);
    return m ? { port: Number(m[1]) } : undefined;
  },
);
try {
  const targets = [
    {
      name: "direct",
      base: `http://127.0.0.1:${upstream.port}`,
      headers: { authorization: `Bearer ${secret}` },
    },
  ];
  // The floor of any proxy hop here: a bare node:http proxy, no auth, no vault (bare-proxy.mjs).
  const bare = await startChild(
    [join(here, "bare-proxy.mjs"), String(upstream.port)],
    { PATH: process.env.PATH },
    (out) => {
      const m = out.match(/listening (\d+)/);
      return m ? { port: Number(m[1]) } : undefined;
    },
  );
  targets.push({
    name: "bare node:http proxy",
    base: `http://127.0.0.1:${bare.port}`,
    pids: [bare.child.pid],
    headers: { authorization: `Bearer ${secret}` },
  });
  if (!directOnly) {
    const server = await startChild(
      [bin, "server", "--data-dir", join(dir, "data"), "--port", "0", "--log-level", "error"],
      ownerEnv,
      (out, err) => {
        const all = out + err;
        const code = all.match(/bootstrap code: (\S+)/);
        const addr = all.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        return code && addr ? { code: code[1], addr: addr[1] } : undefined;
      },
    );
    ownerEnv.KEYHOLE_ADDR = server.addr;
    keyhole(["init", "--bootstrap-code", server.code]);
    keyhole(["secret", "set", secretName], secret);
    const tokenFile = join(dir, "bench.token");
    keyhole(["agent", "create", "bench", "--grant", secretName, "--token-file", tokenFile]);
    keyhole(["grant", "add", "bench", secretName, "--hosts", `127.0.0.1:${upstream.port}`]);
    const noCache = await startBroker(upstream.port, tokenFile, server.addr, 0, "nocache.log");
    const cached = await startBroker(upstream.port, tokenFile, server.addr, 60_000, "cache.log");
    for (const [name, b] of [
      ["broker, no cache", noCache],
      ["broker, cache 60s", cached],
    ]) {
      targets.push({
        name,
        base: b.baseUrl,
        pids: [b.child.pid, server.child.pid],
        headers: { authorization: `Bearer ${b.capability}` },
        broker: b,
      });
    }
  }

  const kinds = kindNames.map((kind) => ({ kind, path: `/${kind}` }));
  const rows = [];
  for (const { kind, path } of kinds) {
    for (const concurrency of levels) {
      const samples = targets.map(() => []);
      // Interleaved, so a noisy moment on the machine hits every target alike.
      for (let i = 0; i < runs; i++) {
        targets.forEach((t, j) => {
          const result = load(`${t.base}${path}`, t.headers, concurrency, t.pids);
          t.sent = (t.sent ?? 0) + result.sent;
          samples[j].push(result);
        });
      }
      const direct = medianOf(samples[0]);
      targets.forEach((t, j) => {
        const m = j === 0 ? direct : medianOf(samples[j]);
        rows.push({
          scenario: `${kind}, ${t.name}`,
          kind,
          target: t.name,
          concurrency,
          ...m,
          addedP50: j === 0 ? undefined : m.p50 - direct.p50,
          addedTtfb50: j === 0 ? undefined : m.ttfb50 - direct.ttfb50,
          ratio: j === 0 ? undefined : m.rps / direct.rps,
        });
      });
    }
  }
  const loadEnd = loadavg();

  const ms = (v) => v.toFixed(2);
  const signed = (v) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}`;
  const header =
    "| scenario | c | req/s | p50 ms | p99 ms | TTFB p50 ms (vs direct) | added p50 vs direct (ms) | ratio req/s | proxy CPU µs/req | vault CPU µs/req | errors |";
  const lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"];
  const us = (v) => (Number.isNaN(v) ? "" : String(Math.round(v)));
  for (const r of rows) {
    const ttfb =
      r.kind === "stream"
        ? `${ms(r.ttfb50)}${r.addedTtfb50 === undefined ? "" : ` (${signed(r.addedTtfb50)})`}`
        : "";
    lines.push(
      `| ${r.scenario} | ${r.concurrency} | ${Math.round(r.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ${ttfb} | ${r.addedP50 === undefined ? "" : signed(r.addedP50)} | ${r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}×`} | ${us(r.cpuUs)} | ${us(r.vaultCpuUs)} | ${r.errors} |`,
    );
  }
  const cpu = cpus();
  const machine = `${cpu.length} × ${cpu[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const date = new Date().toISOString();
  const fmtLoad = (l) => l.map((v) => v.toFixed(2)).join(" ");
  console.log(
    `broker benchmark: ${machine}, ${date}, ${runs} run(s) × ${durationMs} ms per point, ` +
      `SSE ${streamEvents} events ${streamGapMs} ms apart; load average ${fmtLoad(loadStart)} → ${fmtLoad(loadEnd)}` +
      `${profile ? "\nPROFILED: in-process broker under --cpu-prof, not `keyhole broker`; numbers not comparable" : ""}\n`,
  );
  console.log(lines.join("\n"));
  // Every proxied call must have been logged by the broker: a cheap check that the numbers
  // above are calls that went through it.
  for (const t of targets.filter((x) => x.broker !== undefined)) {
    const logged = readFileSync(t.broker.logFile, "utf8").split("broker route=").length - 1;
    if (logged < t.sent) {
      console.log(`\n${t.name}: ${logged} calls logged for ${t.sent} sent`);
      process.exitCode = 1;
    }
  }
  if (!smoke) {
    const file = join(here, "results", `broker-${date.replace(/[:.]/g, "-")}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ machine, date, profile, runs, durationMs, streamEvents, streamGapMs, loadStart, loadEnd, rows }, null, 2)}\n`,
    );
    console.log(`\nwritten ${file}`);
  }
  if (rows.some((r) => r.errors > 0)) process.exitCode = 1;
} finally {
  const exited = children.map(
    (child) =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once("exit", resolve);
      }),
  );
  for (const child of children.reverse()) child.kill("SIGTERM");
  // A profiled broker writes its profile on the way out.
  await Promise.race([
    Promise.all(exited),
    new Promise((r) => setTimeout(r, profile ? 15_000 : 300)),
  ]);
  rmSync(dir, { recursive: true, force: true });
}
if (profile) {
  for (const mode of readdirSync(profileDir)) {
    for (const file of readdirSync(join(profileDir, mode))) {
      const parsed = JSON.parse(readFileSync(join(profileDir, mode, file), "utf8"));
      console.log(`\nbroker ${mode} profile (${join(profileDir, mode, file)}):`);
      console.log(formatSummary(summarise(parsed, 15)));
    }
  }
}
