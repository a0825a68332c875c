#!/usr/bin/env node
// Runs every compiled test file with node's own test runner (Node 20 has no --test globs).
// Usage: node scripts/test.mjs [substring-filter ...]
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function findTests(dir, out) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (entry.endsWith(".test.js")) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = [];
for (const pkg of readdirSync("packages")) {
  const dist = join("packages", pkg, "dist");
  try {
    statSync(dist);
  } catch {
    continue;
  }
  findTests(dist, files);
}
const selected = files
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (selected.length === 0) {
  process.stderr.write("test: no compiled test files found; run `npm run setup` first\n");
  process.exit(1);
}
const concurrency = process.env.KEYHOLE_TEST_CONCURRENCY ?? "2";
const result = spawnSync(
  process.execPath,
  ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...selected],
  { stdio: "inherit", env: { ...process.env, KEYHOLE_TEST: "1" } },
);
process.exit(result.status ?? 1);
