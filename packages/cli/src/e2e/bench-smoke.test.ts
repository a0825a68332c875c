// Keeps the benchmarks working (issue 5: "CI runs a tiny smoke version"): `node bench/run.mjs
// --smoke` runs every benchmark script (fetch, audit verify, store fetch, owner operations, scale,
// cold start, broker, flood) for a fraction of a second per point, and bench/postgres.mjs runs
// with --smoke on its own. They assert that the scripts ran and printed their tables, never a speed: speeds are measured by `npm run bench` and
// recorded in docs/performance.md.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "./harness.js";

/** Runs a benchmark script with `--smoke`; its exit code and everything it printed. */
async function smoke(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [...args, "--smoke"], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, out };
}

// Two tests, each with its own time bound: the PostgreSQL benchmark starts a database server
// and three Keyhole servers, which on a busy two-core machine takes as long as all the rest.
test("every benchmark script runs (smoke), but the PostgreSQL one", {
  timeout: 240_000,
}, async () => {
  const { code, out } = await smoke([join(REPO_ROOT, "bench/run.mjs"), "--skip", "postgres.mjs"]);
  assert.equal(code, 0, out.slice(-4000));
  for (const table of [
    /\| agent fetch \(server\) \| 10 \|/,
    /\| import \+ first secret \|/,
    /\| 2\. audit verify \|/,
    /\| Store\.getSecretForAgent \| \d/,
    /\| secret set \(new version\) \| 10 agents \| \d/,
    /\| agent rotate \| 100 grants \| \d/,
    /\| 10³ secrets \+ 10⁴ audit \| 50 \|/,
    /broker/i,
    /\| recovery \(first of 5 probes/,
  ]) {
    assert.match(out, table);
  }
});

test("the PostgreSQL benchmark runs (smoke)", { timeout: 240_000 }, async () => {
  const { code, out } = await smoke([join(REPO_ROOT, "bench/postgres.mjs")]);
  assert.equal(code, 0, out.slice(-4000));
  // Outside CI it skips, saying so, where PostgreSQL 15 is not installed.
  assert.match(
    out,
    process.env.CI === "true"
      ? /\| Keyhole fetch, PostgreSQL \| 3 \| 10 \|/
      : /\| Keyhole fetch, PostgreSQL \| 3 \| 10 \||PostgreSQL benchmark skipped: /,
  );
});
