// `keyhole dev` as a user runs it: start it, paste what it prints (the SDK one-liner from the
// repository root, then owner commands), stop it with Ctrl-C, run it again on the same directory.
import assert from "node:assert/strict";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { BIN, cleanEnv, type LiveProcess, REPO_ROOT, runProcess, startKeyhole } from "./harness.js";

let dir: string;
let devDir: string;
const running: LiveProcess[] = [];

before(async () => {
  const { mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  dir = await mkdtemp(join(tmpdir(), "keyhole-e2e-dev-"));
  devDir = join(dir, "dev");
});
after(async () => {
  for (const live of running) await live.stop("SIGTERM");
  await rm(dir, { recursive: true, force: true });
});

const TEST_ENV = { KEYHOLE_TEST: "1", KEYHOLE_TEST_ARGON2_FAST: "1" };

/** The `export NAME=value` lines and the `node ...` line of the printed block. */
function parseBlock(stdout: string): { env: Record<string, string>; snippet: string } {
  const env: Record<string, string> = {};
  for (const match of stdout.matchAll(/^export (\w+)=('?)(.*?)\2(?:\s+#.*)?$/gm)) {
    env[match[1] as string] = match[3] as string;
  }
  const snippet = stdout.split("\n").find((line) => line.startsWith("node ")) ?? "";
  return { env, snippet };
}

async function startDev(extra: Record<string, string> = {}, port = "0"): Promise<LiveProcess> {
  const live = startKeyhole(
    ["dev", "--port", port, "--dir", devDir],
    cleanEnv(dir, { ...TEST_ENV, ...extra }),
  );
  running.push(live);
  await live.waitFor(/-- python agent\.py\n/, 20_000);
  return live;
}

async function runSnippet(block: { env: Record<string, string>; snippet: string }) {
  return runProcess("/bin/sh", ["-c", block.snippet], {
    cwd: REPO_ROOT,
    env: cleanEnv(dir, {
      KEYHOLE_ADDR: block.env.KEYHOLE_ADDR,
      KEYHOLE_TOKEN_FILE: block.env.KEYHOLE_TOKEN_FILE,
    }),
  });
}

let passphrase = "";

test("keyhole dev prints what to paste, and the pasted snippet fetches the demo secret", async () => {
  const dev = await startDev();
  const block = parseBlock(dev.stdout());
  assert.match(block.env.KEYHOLE_ADDR ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(block.env.KEYHOLE_TOKEN_FILE, join(devDir, "demo-agent.token"));
  assert.equal(block.env.KEYHOLE_HOME, join(devDir, "owner"));
  assert.equal(
    block.snippet,
    `node --input-type=module -e 'import { Vault } from "@keyhole/sdk"; console.log((await new Vault().get("demo-api-key")).length, "bytes fetched")'`,
  );
  passphrase = block.env.KEYHOLE_PASSPHRASE ?? "";
  assert.ok(passphrase.length >= 16, "a generated passphrase is shown once");
  assert.equal((await stat(join(devDir, "demo-agent.token"))).mode & 0o777, 0o600);

  const fetched = await runSnippet(block);
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.match(fetched.stdout, /^\d+ bytes fetched\n$/);

  const ownerEnv = cleanEnv(dir, { ...TEST_ENV, ...block.env });
  const value = await runProcess(process.execPath, [BIN, "secret", "get", "demo-api-key"], {
    env: ownerEnv,
  });
  assert.equal(value.code, 0, value.stderr);
  assert.equal(fetched.stdout, `${value.stdout.length} bytes fetched\n`);
  assert.ok(
    !dev.stdout().includes(value.stdout) && !dev.stderr().includes(value.stdout),
    "never printed",
  );
  const show = await runProcess(process.execPath, [BIN, "agent", "show", "demo-agent"], {
    env: ownerEnv,
  });
  assert.match(show.stdout, /demo-api-key/);

  const exit = await dev.stop("SIGINT");
  assert.equal(exit.code, 0);
  assert.match(dev.stderr(), /SIGINT: shutting down/);
});

test("running keyhole dev again reuses the directory and re-creates only what is missing", async () => {
  const tokenBefore = await readFile(join(devDir, "demo-agent.token"), "utf8");
  await rm(join(devDir, "demo-agent.token"));
  const dev = await startDev({ KEYHOLE_PASSPHRASE: passphrase });
  assert.doesNotMatch(dev.stderr(), /created the owner|stored demo secret|created demo-agent/);
  assert.match(dev.stderr(), /rotated demo-agent/);
  const block = parseBlock(dev.stdout());
  assert.equal(
    block.env.KEYHOLE_PASSPHRASE,
    undefined,
    "a passphrase is shown only when generated",
  );
  assert.notEqual(await readFile(join(devDir, "demo-agent.token"), "utf8"), tokenBefore);
  const fetched = await runSnippet(block);
  assert.match(fetched.stdout, /^\d+ bytes fetched\n$/);

  const port = /:(\d+)$/.exec(block.env.KEYHOLE_ADDR ?? "")?.[1] ?? "";
  const clash = await runProcess(
    process.execPath,
    [BIN, "dev", "--port", port, "--dir", join(dir, "other")],
    {
      env: cleanEnv(dir, TEST_ENV),
    },
  );
  assert.equal(clash.code, 1);
  assert.equal(clash.stderr, `keyhole: 127.0.0.1:${port} is already in use (try --port)\n`);
  assert.equal((await dev.stop("SIGTERM")).code, 0);
});
