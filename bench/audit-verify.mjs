#!/usr/bin/env node
// `keyhole audit verify` over a long log (issue 5: at least 500,000 entries/s over 1,000,000).
// Two parts in one run:
//
// 1. The chain check alone, in this process: N agent `secret.read` entries hashed as the server
//    hashes them (core's chainAuditHash with the server's sha256Sync) and served as the API's
//    JSON pages of 1,000 (the server's own auditEntryView). Then the CLI's own code on them:
//    parseAuditPage per page, then verifyAuditChainPages (core's AuditChainVerifier, fed page
//    by page as the command feeds it), timed apart, median of 3 runs. Two reference rows (one
//    run each, they only split the cost) time core's hashing alone and the canonical entry
//    bytes alone.
// 2. End to end: a real `keyhole server` whose log is filled through the server's store
//    (appendAudit in a loop, what every audited request does, while the server is stopped), then
//    the whole `keyhole audit verify` command, timed from outside, with the server's CPU time.
//    One run: at 1,000,000 entries the fill and each verify take over a minute on 2 cores.
//
//   node bench/audit-verify.mjs                 1,000,000 entries
//   node bench/audit-verify.mjs --entries N     N entries in both parts
//   node bench/audit-verify.mjs --smoke         20,000 entries, 1 run, no result file
import { execFileSync } from "node:child_process";
import * as nodeCrypto from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  AUDIT_GENESIS,
  auditFieldsFromView,
  chainAuditHash,
  encodeAuditEntry,
  equalBytes,
  newId,
} from "@keyhole/core";
import { verifyAuditChainPages } from "../packages/cli/dist/owner/audit.js";
import { parseAuditPage } from "../packages/cli/dist/owner/views.js";
import { sha256Sync } from "../packages/server/dist/audit/sha256.js";
import { auditEntryView } from "../packages/server/dist/routes/views.js";
import { openSqliteStore } from "../packages/server/dist/store/sqlite.js";
import { startKeyholeServer } from "./keyhole-server.mjs";
import { fillAuditThroughStore, readDrafts } from "./seed.mjs";

const { values: options } = parseArgs({
  options: { smoke: { type: "boolean" }, entries: { type: "string" } },
});
const smoke = options.smoke === true;
const entries = Number(options.entries ?? (smoke ? 20_000 : 1_000_000));
if (!Number.isSafeInteger(entries) || entries < 1) {
  console.error("--entries needs a positive integer");
  process.exit(2);
}
const runs = smoke ? 1 : 3;
const PAGE = 1000; // the largest page GET /v1/owner/audit serves, and what the CLI asks for
const here = fileURLToPath(new URL(".", import.meta.url));
const bin = join(here, "../packages/cli/bin/keyhole.js");
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const rate = (n, ms) => Math.round((n / ms) * 1000);

// What the owner CLI hashes with (packages/cli/src/owner/audit.ts).
const cliSha256 =
  typeof nodeCrypto.hash === "function"
    ? (data) => nodeCrypto.hash("sha256", data, "buffer")
    : (data) => nodeCrypto.createHash("sha256").update(data).digest();

/** The log as the API serves it: JSON pages `{ entries, next }`, and the chain head. */
function buildPages(n) {
  const draft = readDrafts(newId("agent"), newId("secret"));
  const pages = [];
  let head = AUDIT_GENESIS;
  let page = [];
  for (let seq = 1; seq <= n; seq++) {
    const fields = { seq, ...draft(seq) };
    head = chainAuditHash(head, fields, sha256Sync);
    page.push(auditEntryView({ ...fields, hash: head }));
    if (page.length === PAGE || seq === n) {
      pages.push(JSON.stringify({ entries: page, next: seq === n ? null : seq }));
      page = [];
    }
  }
  return { pages, head };
}

function timed(fn) {
  const start = performance.now();
  const value = fn();
  return { ms: performance.now() - start, value };
}

async function timedAsync(fn) {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

async function* each(pages) {
  yield* pages;
}

async function chainCheckAlone(n) {
  const built = timed(() => buildPages(n));
  const { pages, head } = built.value;
  const steps = { parse: [], chain: [], hashing: [], encoding: [] };
  for (let i = 0; i < runs; i++) {
    // What the CLI does per page (the client's JSON.parse, then the shape check), then the
    // chain check over the pages as `audit verify` feeds it (there, page by page as they come).
    const parsed = timed(() => pages.map((text) => parseAuditPage(JSON.parse(text)).entries));
    const chain = await timedAsync(() => verifyAuditChainPages(each(parsed.value), [n]));
    if (!equalBytes(chain.value.headAt(n), head)) throw new Error("chain check: wrong head");
    const views = parsed.value.flat();
    steps.parse.push(parsed.ms);
    steps.chain.push(chain.ms);
    if (i > 0) continue;
    const hashing = timed(() => {
      let h = AUDIT_GENESIS;
      for (const view of views) h = chainAuditHash(h, auditFieldsFromView(view), cliSha256);
      return h;
    });
    const encoding = timed(() => {
      for (const view of views) encodeAuditEntry(auditFieldsFromView(view));
    });
    steps.hashing.push(hashing.ms);
    steps.encoding.push(encoding.ms);
  }
  const ms = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, median(v)]));
  return { buildMs: built.ms, wireBytes: pages.reduce((sum, p) => sum + p.length, 0), ms };
}

const env = { PATH: process.env.PATH, KEYHOLE_PASSPHRASE: "benchmark passphrase" };

function keyhole(args, input = "") {
  return execFileSync(process.execPath, [bin, ...args], { env, input, stdio: "pipe" }).toString();
}

async function stopServer(server) {
  server.child.kill("SIGTERM");
  await server.exited;
}

/** User + system CPU time of a process, in ms (/proc, clock ticks of 10 ms). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function endToEnd(n) {
  const dir = mkdtempSync(join(tmpdir(), "keyhole-audit-bench-"));
  const dataDir = join(dir, "data");
  Object.assign(env, { HOME: dir, KEYHOLE_HOME: join(dir, "owner") });
  let server = await startKeyholeServer({ env, dataDir });
  try {
    env.KEYHOLE_ADDR = server.addr;
    keyhole(["init", "--bootstrap-code", server.code]);
    keyhole(["secret", "set", "demo"], "x".repeat(64));
    keyhole(["agent", "create", "bench", "--grant", "demo", "--token-file", join(dir, "token")]);
    await stopServer(server);

    // The server is stopped, so nothing else writes: the store appends as it does per request.
    const store = openSqliteStore({ path: join(dataDir, "keyhole.db") });
    const setup = await store.listAudit({ limit: 100 });
    const agentId = setup.find((e) => e.action === "agent.create").agentId;
    const secretId = setup.find((e) => e.action === "secret.write").secretId;
    const draft = readDrafts(agentId, secretId);
    const fillStart = performance.now();
    await fillAuditThroughStore(store, draft, n);
    const fillMs = performance.now() - fillStart;
    await store.close();

    server = await startKeyholeServer({ env, dataDir, fresh: false });
    env.KEYHOLE_ADDR = server.addr;
    // The fixed cost of any owner command: Node start-up, unlocking the owner key, one request.
    const sessionMs = timed(() => keyhole(["agent", "list"])).ms;
    const cpuBefore = cpuMs(server.child.pid);
    const run = timed(() => keyhole(["audit", "verify"]));
    const serverCpuMs = cpuMs(server.child.pid) - cpuBefore;
    // The log also holds the set-up's own entries (init, secret, agent): all are verified.
    const logged = Number(run.value.match(/audit log ok: (\d+) entries/)[1]);
    return { fillMs, logged, sessionMs, verifyMs: run.ms, serverCpuMs };
  } finally {
    await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

const alone = await chainCheckAlone(entries);
const e2e = await endToEnd(entries);

const { ms } = alone;
const rows = [
  ["1. wire → views", "JSON.parse + parseAuditPage, pages of 1,000", entries, ms.parse],
  ["1. chain check", "verifyAuditChainPages (the CLI's)", entries, ms.chain],
  [
    "1. parse + chain check",
    "what verify does per entry, client side",
    entries,
    ms.parse + ms.chain,
  ],
  [
    "1. of which: hashing",
    "core chainAuditHash + auditFieldsFromView (1 run)",
    entries,
    ms.hashing,
  ],
  ["1. of which: entry bytes", "core encodeAuditEntry alone (1 run)", entries, ms.encoding],
  ["2. fill", "store.appendAudit, group commit, server stopped", entries, e2e.fillMs],
  ["2. audit verify", "the whole `keyhole audit verify` command", e2e.logged, e2e.verifyMs],
  [
    "2. owner command floor",
    "`keyhole agent list` (start-up, unlock, 1 request)",
    1,
    e2e.sessionMs,
  ],
];
const table = [
  "| step | what | entries | ms | entries/s |",
  "|---|---|---|---|---|",
  ...rows.map(
    ([step, what, n, t]) =>
      `| ${step} | ${what} | ${n} | ${Math.round(t)} | ${n === 1 ? "" : rate(n, t)} |`,
  ),
];
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`;
const date = new Date().toISOString();
console.log(`${machine}, ${date}; part 1: median of ${runs} run(s); part 2: 1 run\n`);
console.log(table.join("\n"));
console.log(
  `\nwire: ${(alone.wireBytes / 1e6).toFixed(0)} MB of JSON; building the log took ` +
    `${Math.round(alone.buildMs)} ms; the server spent ${e2e.serverCpuMs} ms of CPU during ` +
    `audit verify (target: ≥ 500,000 entries/s)`,
);
if (!smoke) {
  const file = join(here, "results", `audit-verify-${date.replace(/[:.]/g, "-")}.json`);
  const result = { machine, date, entries, runs, chainCheck: alone, endToEnd: e2e, rows };
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwritten ${file}`);
}
