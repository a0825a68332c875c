#!/usr/bin/env node
// One-command set-up from a fresh clone: install exactly the lockfile without running any
// package's install scripts, rebuild the one native dependency we trust by name, then build.
// Idempotent: a second run skips the native rebuild when the existing binary loads.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

const run = (cmd, args, env = process.env) => execFileSync(cmd, args, { stdio: "inherit", env });
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

if (!existsSync("node_modules/.package-lock.json") || process.env.CI) {
  run(npm, ["ci", "--ignore-scripts", "--no-audit", "--no-fund"]);
}

function sqliteLoads() {
  try {
    const require = createRequire(new URL("../packages/server/package.json", import.meta.url));
    const Database = require("better-sqlite3");
    new Database(":memory:").close();
    return true;
  } catch {
    return false;
  }
}

if (!sqliteLoads()) {
  // better-sqlite3 is the only package we build, by name: a prebuilt binary would be a download
  // outside the lockfile's integrity hashes.
  process.stderr.write("setup: building better-sqlite3 from source (about 2 minutes)\n");
  // npm tells its scripts where its own node-gyp is; calling it directly compiles the module
  // from the sources in its registry tarball, so the prebuilt-binary download step never runs.
  const nodeGyp = process.env.npm_config_node_gyp;
  if (nodeGyp) {
    const dir = createRequire(new URL("../packages/server/package.json", import.meta.url))
      .resolve("better-sqlite3/package.json")
      .replace(/package\.json$/, "");
    execFileSync(process.execPath, [nodeGyp, "rebuild", "--release"], {
      cwd: dir,
      stdio: "inherit",
    });
  } else {
    run(npm, ["rebuild", "better-sqlite3", "--ignore-scripts=false"], {
      ...process.env,
      npm_config_build_from_source: "true",
    });
  }
  if (!sqliteLoads()) {
    process.stderr.write("setup: better-sqlite3 did not build; is a C++ compiler installed?\n");
    process.exit(1);
  }
}

run(npm, ["run", "build", "--silent"]);
process.stderr.write("setup: done\n");
