#!/usr/bin/env node
// End-to-end SDK fetch, warm: one Vault, sequential `get()` calls (verification and decryption
// included). Usage: node bench/sdk-get.mjs ADDR TOKEN_FILE NAME DURATION_MS; prints JSON.
import { Vault } from "@keyhole/sdk";

const [addr, tokenFile, name, durationMs] = process.argv.slice(2);
const vault = new Vault({ addr, tokenFile });
for (let i = 0; i < 50; i++) await vault.get(name);
const latencies = [];
const until = performance.now() + Number(durationMs);
const start = performance.now();
while (performance.now() < until) {
  const t0 = performance.now();
  await vault.get(name);
  latencies.push(performance.now() - t0);
}
const elapsed = performance.now() - start;
latencies.sort((a, b) => a - b);
const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
process.stdout.write(
  `${JSON.stringify({ requests: latencies.length, errors: 0, rps: (latencies.length / elapsed) * 1000, p50: pick(0.5), p99: pick(0.99), max: latencies.at(-1) })}\n`,
);
vault.close();
