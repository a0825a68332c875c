#!/usr/bin/env node
// Runs every compiled test file with node's own test runner (Node 20 has no --test globs).
// Usage: node scripts/test.mjs [substring-filter ...]
//
// The PostgreSQL tests need a server: unless KEYHOLE_TEST_DATABASE_URL names one, this starts a
// throwaway PostgreSQL 15 (scripts/pg-server.mjs; under CI=true it installs the Debian package
// if missing) and stops it afterwards. Outside CI, a machine without PostgreSQL skips those
// tests with a notice; under CI that is a failure.
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
const env = { ...process.env, KEYHOLE_TEST: "1" };
const postgres = await testPostgres(env);
const concurrency = process.env.KEYHOLE_TEST_CONCURRENCY ?? "2";
let status;
try {
  const result = spawnSync(
    process.execPath,
    ["--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...selected],
    { stdio: "inherit", env },
  );
  status = result.status ?? 1;
} finally {
  await postgres?.stop();
}
process.exit(status);

/** Starts the PostgreSQL test server unless one is given; sets its URL in `env`. */
async function testPostgres(env) {
  if (env.KEYHOLE_TEST_DATABASE_URL) return null;
  const { PgServerError, startPostgres } = await import("./pg-server.mjs");
  try {
    const server = await startPostgres();
    env.KEYHOLE_TEST_DATABASE_URL = server.url;
    return server;
  } catch (error) {
    if (process.env.CI === "true" || !(error instanceof PgServerError)) throw error;
    process.stderr.write(`test: PostgreSQL tests skipped: ${error.message}\n`);
    return null;
  }
}
