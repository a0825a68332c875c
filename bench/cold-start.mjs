#!/usr/bin/env node
// Cold start (issue 5, scenario 4): a fresh Node process that imports the SDK and fetches one
// secret, against `node -e 0`, measured as whole processes from spawn to exit. The three kinds
// of process are interleaved, so drift on this shared machine hits them alike; each figure is
// the median (and p90) of the runs. Target: import + first secret ≤ 20 ms above `node -e 0`.
//
//   node bench/cold-start.mjs            30 runs of each
//   node bench/cold-start.mjs --smoke    3 runs of each (keeps the script working)
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startKeyholeServer } from "./keyhole-server.mjs";
import { setUpFetchVault } from "./seed.mjs";

const smoke = process.argv.includes("--smoke");
const runs = smoke ? 3 : 30;
const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..");
const dir = mkdtempSync(join(tmpdir(), "keyhole-cold-"));
const env = {
  PATH: process.env.PATH,
  HOME: dir,
  KEYHOLE_HOME: join(dir, "owner"),
  KEYHOLE_PASSPHRASE: "benchmark passphrase",
};

/** Milliseconds from spawn to exit of `node ARGS` (which must exit 0). */
function timeProcess(args, childEnv) {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { cwd: root, env: childEnv, stdio: "pipe" });
  const ms = performance.now() - started;
  if (result.status !== 0) throw new Error(`node ${args.join(" ")}: ${result.stderr}`);
  return ms;
}

const quantile = (values, q) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))];

const server = await startKeyholeServer({ env, dataDir: join(dir, "data") });
try {
  const { tokenFile } = await setUpFetchVault(env, server, dir);
  const agentEnv = { PATH: env.PATH, KEYHOLE_ADDR: server.addr, KEYHOLE_TOKEN_FILE: tokenFile };
  const kinds = {
    "node -e 0": ["-e", "0"],
    "import @keyhole/sdk": ["--input-type=module", "-e", 'import "@keyhole/sdk";'],
    "import + first secret": [join(here, "cold-fetch.mjs")],
  };
  const times = Object.fromEntries(Object.keys(kinds).map((k) => [k, []]));
  for (let i = 0; i < runs + 1; i++) {
    for (const [kind, args] of Object.entries(kinds)) {
      const ms = timeProcess(args, agentEnv);
      if (i > 0) times[kind].push(ms); // the first round warms the disk cache
    }
  }
  const base = quantile(times["node -e 0"], 0.5);
  const rows = Object.entries(times).map(([kind, values]) => ({
    kind,
    p50: quantile(values, 0.5),
    p90: quantile(values, 0.9),
    above: quantile(values, 0.5) - base,
  }));
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`;
  console.log(`${machine}, ${new Date().toISOString()}, ${runs} runs of each, interleaved\n`);
  console.log("| process | p50 ms | p90 ms | p50 above `node -e 0` |\n|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.kind} | ${r.p50.toFixed(1)} | ${r.p90.toFixed(1)} | ${r.above.toFixed(1)} ms |`,
    );
  }
  if (!smoke) {
    const file = join(
      here,
      "results",
      `cold-start-${new Date().toISOString().replace(/[:.]/g, "-")}.json`,
    );
    writeFileSync(
      file,
      `${JSON.stringify({ machine, date: new Date().toISOString(), runs, rows }, null, 2)}\n`,
    );
    console.log(`\nwritten ${file}`);
  }
} finally {
  server.child.kill("SIGTERM");
  await new Promise((resolve) => setTimeout(resolve, 300));
  rmSync(dir, { recursive: true, force: true });
}
