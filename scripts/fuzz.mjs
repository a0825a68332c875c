#!/usr/bin/env node
// Runs the compiled fuzz tests (SECURITY-TESTS #10) with many more cases than CI does.
// Usage: npm run fuzz [-- RUNS]   (default 20000 cases per cheap target; build first: npx tsc -b)
// A failure prints fast-check's seed and counterexample; re-run that file to reproduce it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const FILES = [
  "packages/core/dist/parsers.fuzz.test.js",
  "packages/core/dist/cidr.test.js",
  "packages/server/dist/fuzz.test.js",
];

const runs = process.argv[2] ?? process.env.KEYHOLE_FUZZ_RUNS ?? "20000";
if (!/^[1-9][0-9]*$/.test(runs)) {
  process.stderr.write("fuzz: RUNS must be a positive integer\n");
  process.exit(2);
}
const missing = FILES.filter((file) => !existsSync(file));
if (missing.length > 0) {
  process.stderr.write(`fuzz: ${missing.join(", ")} not built; run \`npx tsc -b\` first\n`);
  process.exit(1);
}
process.stderr.write(`fuzz: KEYHOLE_FUZZ_RUNS=${runs}\n`);
const started = Date.now();
const result = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=2", "--test-reporter=spec", ...FILES],
  { stdio: "inherit", env: { ...process.env, KEYHOLE_TEST: "1", KEYHOLE_FUZZ_RUNS: runs } },
);
process.stderr.write(`fuzz: finished in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
process.exit(result.status ?? 1);
