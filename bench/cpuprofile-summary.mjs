#!/usr/bin/env node
// Summarises V8 CPU profiles (from `node --cpu-prof`): busy self time (idle left out) by
// function and by module, the top entries only.
// Usage: node bench/cpuprofile-summary.mjs FILE.cpuprofile|DIR [TOP=15]  (a DIR: all its profiles)
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** Busy self time per function and per module (ms), busiest first, from parsed profiles. */
export function summarise(profiles, top = 15) {
  const list = Array.isArray(profiles) ? profiles : [profiles];
  const self = [];
  for (const profile of list) {
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const ms = new Map();
    for (let i = 0; i < profile.samples.length; i++) {
      const id = profile.samples[i];
      ms.set(id, (ms.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
    for (const [id, t] of ms) self.push([byId.get(id), t]);
  }
  const functions = new Map();
  const modules = new Map();
  let total = 0;
  for (const [node, ms] of self) {
    const { callFrame } = node;
    // Waiting for I/O is not work: shares are of the time the process was busy.
    if (callFrame.functionName === "(idle)") continue;
    const url = callFrame.url || "(native)";
    const file = url.replace(/^file:\/\/.*?\/(node_modules|packages)\//, "$1/");
    const name = `${callFrame.functionName || "(anonymous)"} ${file}:${callFrame.lineNumber + 1}`;
    const module = callFrame.url === "" ? callFrame.functionName || "(native)" : file;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    modules.set(module, (modules.get(module) ?? 0) + ms);
    total += ms;
  }
  const rank = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, ms]) => ({ key, ms, share: total === 0 ? 0 : ms / total }));
  return { totalMs: total, functions: rank(functions), modules: rank(modules) };
}

/** The summary as text lines. */
export function formatSummary(summary) {
  const line = ({ key, ms, share }) =>
    `  ${(share * 100).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms  ${key}`;
  return [
    `sampled ${summary.totalMs.toFixed(0)} ms; self time by module:`,
    ...summary.modules.map(line),
    "self time by function:",
    ...summary.functions.map(line),
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [path, top = "15"] = process.argv.slice(2);
  if (path === undefined) {
    console.error("usage: node bench/cpuprofile-summary.mjs FILE.cpuprofile|DIR [TOP]");
    process.exit(2);
  }
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => f.endsWith(".cpuprofile"))
        .map((f) => join(path, f))
    : [path];
  const profiles = files.map((file) => JSON.parse(readFileSync(file, "utf8")));
  console.log(formatSummary(summarise(profiles, Number(top))));
}
