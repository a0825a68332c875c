#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by module, the
// top entries only. Usage: node bench/cpuprofile-summary.mjs FILE.cpuprofile [TOP=15]
import { readFileSync } from "node:fs";

/** Self time per function and per module (ms), busiest first, from a parsed profile. */
export function summarise(profile, top = 15) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const functions = new Map();
  const modules = new Map();
  let total = 0;
  for (const [id, ms] of self) {
    const { callFrame } = byId.get(id);
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
  const [file, top = "15"] = process.argv.slice(2);
  const profile = JSON.parse(readFileSync(file, "utf8"));
  console.log(formatSummary(summarise(profile, Number(top))));
}
