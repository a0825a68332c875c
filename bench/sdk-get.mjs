#!/usr/bin/env node
// End-to-end SDK fetch, warm (issue 5: p50 ≤ 1 ms on loopback): one Vault, sequential `get()`
// calls, verification and decryption included. Prints one JSON line: latency quantiles, and the
// CPU time this (client) process spent per get, which a busy shared machine distorts far less
// than wall-clock latency does.
//
//   node bench/sdk-get.mjs ADDR TOKEN_FILE NAME DURATION_MS   against a running server (bench/run.mjs)
//   node bench/sdk-get.mjs [DURATION_MS]                     starts its own server (default 3000 ms)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vault } from "@keyhole/sdk";
import { startKeyholeServer } from "./keyhole-server.mjs";
import { setUpFetchVault } from "./seed.mjs";

/** Warms up, then calls `get(name)` back to back for `durationMs`; returns the figures. */
async function measure(addr, tokenFile, name, durationMs) {
  const vault = new Vault({ addr, tokenFile });
  for (let i = 0; i < 50; i++) await vault.get(name);
  const latencies = [];
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const until = start + durationMs;
  while (performance.now() < until) {
    const t0 = performance.now();
    await vault.get(name);
    latencies.push(performance.now() - t0);
  }
  const elapsed = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  vault.close();
  latencies.sort((a, b) => a - b);
  const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return {
    requests: latencies.length,
    errors: 0,
    rps: (latencies.length / elapsed) * 1000,
    p50: pick(0.5),
    p99: pick(0.99),
    max: latencies.at(-1),
    cpuMsPerGet: (cpu.user + cpu.system) / 1000 / latencies.length,
  };
}

/** A fresh server in a temporary directory with one secret ("demo") granted to one agent. */
async function withOwnServer(fn) {
  const dir = mkdtempSync(join(tmpdir(), "keyhole-sdk-get-"));
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    KEYHOLE_HOME: join(dir, "owner"),
    KEYHOLE_PASSPHRASE: "benchmark passphrase",
  };
  const server = await startKeyholeServer({ env, dataDir: join(dir, "data") });
  try {
    const { tokenFile } = await setUpFetchVault(env, server, dir);
    return await fn(server.addr, tokenFile);
  } finally {
    server.child.kill("SIGTERM");
    await server.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
const result =
  args.length >= 4
    ? await measure(args[0], args[1], args[2], Number(args[3]))
    : await withOwnServer((addr, tokenFile) =>
        measure(addr, tokenFile, "demo", Number(args[0] ?? 3000)),
      );
process.stdout.write(`${JSON.stringify(result)}\n`);
