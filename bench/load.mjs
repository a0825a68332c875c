#!/usr/bin/env node
// A closed-loop HTTP load generator, run as its own process so it does not share an event loop
// with the server it measures. Usage: node bench/load.mjs '<json>' with
// { url, headers, concurrency, durationMs, warmupMs }; prints one JSON line of results.
import http from "node:http";

const { url, headers = {}, concurrency, durationMs, warmupMs = 500 } = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(url);

function once() {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, agent, headers },
      (res) => {
        res.resume();
        res.on("end", () =>
          resolve({ ok: res.statusCode === 200, ns: process.hrtime.bigint() - started }),
        );
      },
    );
    req.on("error", () => resolve({ ok: false, ns: process.hrtime.bigint() - started }));
    req.end();
  });
}

async function worker(until, latencies, counts) {
  while (performance.now() < until) {
    const { ok, ns } = await once();
    if (latencies) latencies.push(Number(ns) / 1e6);
    if (!ok) counts.errors++;
  }
}

async function phase(ms, record) {
  const latencies = record ? [] : null;
  const counts = { errors: 0 };
  const until = performance.now() + ms;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, () => worker(until, latencies, counts)));
  return { latencies, errors: counts.errors, elapsed: performance.now() - start };
}

await phase(warmupMs, false);
const { latencies, errors, elapsed } = await phase(durationMs, true);
latencies.sort((a, b) => a - b);
const pick = (q) =>
  latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
process.stdout.write(
  `${JSON.stringify({
    requests: latencies.length,
    errors,
    rps: (latencies.length / elapsed) * 1000,
    p50: pick(0.5),
    p99: pick(0.99),
    max: latencies.at(-1) ?? 0,
  })}\n`,
);
agent.destroy();
