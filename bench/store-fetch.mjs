#!/usr/bin/env node
// The agent fetch in the SQLite store alone, without HTTP, auth or a load generator sharing the
// two cores: `Store.getSecretForAgent` (token re-check, secret + grant + ciphertext, audit entry,
// group commit, fsync) in bursts of 50, as the server runs it at concurrency 50. Against a
// baseline in the same process: one prepared SELECT of a 300-byte value by key, the read the
// HTTP baseline (baseline-server.mjs) makes. CPU time per fetch (this process and its threads)
// is the figure: wall-clock rates on this shared machine swing by ±20% from run to run.
//
//   node bench/store-fetch.mjs [--smoke]
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  grantFor,
  newAgent,
  newToken,
  request,
  secretWrite,
  T0,
} from "../packages/server/dist/store/contract-fixtures.js";
import { openSqliteStore } from "../packages/server/dist/store/sqlite.js";

const smoke = process.argv.includes("--smoke");
const BURST = 50;
const bursts = smoke ? 20 : 2_000;
const runs = smoke ? 1 : 3;
const require = createRequire(new URL("../packages/server/package.json", import.meta.url));
const Database = require("better-sqlite3");
const dir = mkdtempSync(join(tmpdir(), "keyhole-store-fetch-"));

/** Runs `burst()` `count` times after a warm-up; CPU µs and wall µs per operation. */
async function measure(burst, count) {
  for (let i = 0; i < Math.min(100, count); i++) await burst();
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < count; i++) await burst();
  const wallUs = ((performance.now() - start) * 1000) / (count * BURST);
  const cpu = process.cpuUsage(cpuBefore);
  return { cpuUs: (cpu.user + cpu.system) / (count * BURST), wallUs };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

try {
  const store = openSqliteStore({ path: join(dir, "keyhole.db") });
  await store.ensureVault("vlt_bench", T0);
  const secret = secretWrite("db");
  await store.putSecretVersion(secret, T0, request());
  const agent = newAgent("bench");
  const token = newToken();
  await store.createAgent(agent, token, [grantFor(agent, secret.id, 1)], T0, request());
  const principal = { agentId: agent.id, tokenId: token.tokenId };
  const audit = request({ ts: T0 + 1, actorType: "agent", actorId: agent.id });
  const fetchBurst = () =>
    Promise.all(
      Array.from({ length: BURST }, () => store.getSecretForAgent(principal, "db", T0 + 1, audit)),
    );

  const db = new Database(join(dir, "baseline.db"));
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)");
  db.prepare("INSERT INTO secrets VALUES (?, ?)").run("demo", Buffer.alloc(300, 7));
  const read = db.prepare("SELECT value FROM secrets WHERE name = ?");
  const readBurst = () => Promise.all(Array.from({ length: BURST }, async () => read.get("demo")));

  const fetches = [];
  const reads = [];
  for (let run = 0; run < runs; run++) {
    reads.push(await measure(readBurst, bursts));
    fetches.push(await measure(fetchBurst, bursts));
  }
  const fetchCpu = median(fetches.map((m) => m.cpuUs));
  const readCpu = median(reads.map((m) => m.cpuUs));
  console.log(`store fetch, bursts of ${BURST}, median of ${runs} × ${bursts} bursts\n`);
  console.log("| scenario | CPU µs per op | wall µs per op |");
  console.log("|---|---|---|");
  console.log(
    `| baseline: one SELECT by key | ${readCpu.toFixed(1)} | ${median(reads.map((m) => m.wallUs)).toFixed(1)} |`,
  );
  console.log(
    `| Store.getSecretForAgent | ${fetchCpu.toFixed(1)} | ${median(fetches.map((m) => m.wallUs)).toFixed(1)} |`,
  );
  db.close();
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
