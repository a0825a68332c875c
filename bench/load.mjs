#!/usr/bin/env node
// A closed-loop HTTP load generator, run as its own process so it does not share an event loop
// with the server it measures. Usage: node bench/load.mjs < spec.json, the spec
// { url, headers, concurrency, durationMs, warmupMs } on standard input (never in argv, which
// every user of the machine can read: the headers hold an agent's auth key or a capability);
// prints one JSON line of results. `urls` instead of `url` spreads the load over several
// servers: connection i always asks urls[i % urls.length]. `ttfb50`
// is the median time to the first body byte (what a streaming client waits for); `sent` counts
// every request, warm-up included (to divide a server's CPU time by).
import { readFileSync } from "node:fs";
import http from "node:http";

const spec = JSON.parse(readFileSync(0, "utf8"));
const { url, urls = [url], headers = {}, concurrency, durationMs, warmupMs = 500 } = spec;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const targets = urls.map((u) => new URL(u));

function once(target) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    let first;
    let settled = false;
    const done = (ok) => {
      if (settled) return;
      settled = true;
      const ns = process.hrtime.bigint() - started;
      resolve({ ok, ns, firstNs: first ?? ns });
    };
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        agent,
        headers,
      },
      (res) => {
        res.once("data", () => {
          first = process.hrtime.bigint() - started;
        });
        res.on("end", () => done(res.statusCode === 200));
        res.on("close", () => done(false));
        res.resume();
      },
    );
    // Bounded: a request the server never finishes counts as an error instead of hanging the run.
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", () => done(false));
    req.end();
  });
}

async function worker(target, until, latencies, firsts, counts) {
  while (performance.now() < until) {
    const { ok, ns, firstNs } = await once(target);
    if (latencies) latencies.push(Number(ns) / 1e6);
    if (firsts) firsts.push(Number(firstNs) / 1e6);
    if (!ok) counts.errors++;
    counts.sent++;
  }
}

async function phase(ms, record) {
  const latencies = record ? [] : null;
  const firsts = record ? [] : null;
  const counts = { errors: 0, sent: 0 };
  const until = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, (_, i) =>
      worker(targets[i % targets.length], until, latencies, firsts, counts),
    ),
  );
  return {
    latencies,
    firsts,
    errors: counts.errors,
    sent: counts.sent,
    elapsed: performance.now() - start,
  };
}

const warm = await phase(warmupMs, false);
const { latencies, firsts, errors, sent, elapsed } = await phase(durationMs, true);
latencies.sort((a, b) => a - b);
firsts.sort((a, b) => a - b);
const pickFrom = (values, q) =>
  values[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0;
const pick = (q) => pickFrom(latencies, q);
process.stdout.write(
  `${JSON.stringify({
    requests: latencies.length,
    errors,
    rps: (latencies.length / elapsed) * 1000,
    p50: pick(0.5),
    p99: pick(0.99),
    max: latencies.at(-1) ?? 0,
    ttfb50: pickFrom(firsts, 0.5),
    sent: warm.sent + sent,
  })}\n`,
);
agent.destroy();
