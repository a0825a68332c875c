// Keeps the benchmarks working (issue 5: "CI runs a tiny smoke version"): `node bench/run.mjs
// --smoke` runs every benchmark script (fetch, audit verify, store fetch, owner operations, scale,
// PostgreSQL, cold start, broker, flood) for a fraction of a second per point. It asserts that
// they ran and printed their tables, never a speed: speeds are measured by `npm run bench` and
// recorded in docs/performance.md.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "./harness.js";

test("every benchmark script runs (smoke)", { timeout: 240_000 }, async () => {
  const child = spawn(process.execPath, [join(REPO_ROOT, "bench/run.mjs"), "--smoke"], {
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
    // bench/postgres.mjs; outside CI it skips, saying so, where PostgreSQL 15 is not installed
    process.env.CI === "true"
      ? /\| Keyhole fetch, PostgreSQL \| 3 \| 10 \|/
      : /\| Keyhole fetch, PostgreSQL \| 3 \| 10 \||PostgreSQL benchmark skipped: /,
  ]) {
    assert.match(out, table);
  }
});
