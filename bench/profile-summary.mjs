#!/usr/bin/env node
// Summarises the V8 CPU profiles in DIR (`node --cpu-prof`): self time by function and by
// package area, so "where the time goes per fetch" is read from a profile, not guessed.
// Usage: node bench/profile-summary.mjs DIR [TOP]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [dir, topText = "25"] = process.argv.slice(2);
if (dir === undefined) {
  console.error("usage: node bench/profile-summary.mjs DIR [TOP]");
  process.exit(2);
}
const top = Number(topText);

/** Where a function lives, in words a reader of the table knows. */
function area(url) {
  if (url === "") return "(V8, GC, native)";
  if (url.includes("/packages/server/")) return "keyhole server";
  if (url.includes("/packages/core/")) return "keyhole core";
  if (url.includes("better-sqlite3")) return "better-sqlite3 (JS side)";
  if (url.startsWith("node:")) return `node: ${url.slice(5).split("/")[0]}`;
  return "other";
}

const byFunction = new Map();
const byArea = new Map();
let total = 0;
for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8"));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const deltas = profile.timeDeltas;
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    const ms = (deltas[i] ?? 0) / 1000;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") return;
    total += ms;
    const name = `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    const where = functionName === "(garbage collector)" ? "(garbage collector)" : area(url);
    byArea.set(where, (byArea.get(where) ?? 0) + ms);
  });
}
const pct = (ms) => `${((100 * ms) / total).toFixed(1)}%`;
console.log(`busy CPU: ${(total / 1000).toFixed(1)} s\n`);
console.log("| area | self time | share |\n|---|---|---|");
for (const [name, ms] of [...byArea].sort((a, b) => b[1] - a[1])) {
  console.log(`| ${name} | ${(ms / 1000).toFixed(2)} s | ${pct(ms)} |`);
}
console.log("\n| function | self time | share |\n|---|---|---|");
for (const [name, ms] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| \`${name}\` | ${(ms / 1000).toFixed(2)} s | ${pct(ms)} |`);
}
