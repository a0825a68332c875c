// The bare `keyhole-server` entry refuses a repeated option, as the CLI does: Node's parseArgs
// keeps the last one silently, so `--trusted-proxy A --trusted-proxy B` would trust only B.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "keyhole-main-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("a repeated option is a usage error (exit 2) naming it, and nothing is started", () => {
  const dataDir = join(root, "data");
  for (const [name, ...args] of [
    ["--trusted-proxy", "--trusted-proxy", "10.0.0.1", "--trusted-proxy", "10.0.0.2"],
    ["--port", "--port", "0", "--port=0"],
    ["--data-dir", "--data-dir", join(root, "other")],
  ]) {
    const run = spawnSync(process.execPath, [MAIN, "--data-dir", dataDir, ...args], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(run.status, 2, `${args.join(" ")}: ${run.stderr}`);
    const first = run.stderr.split("\n")[0] ?? "";
    assert.equal(first, `keyhole server: option '${name}' given more than once`);
    assert.ok(!existsSync(dataDir), "no data directory was created");
  }
});
