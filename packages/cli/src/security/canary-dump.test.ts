// SECURITY-TESTS #1 (canary dump) and #12 (never logged), end to end: a real `keyhole server`
// process at its most verbose log level, the real CLI and the real SDK in a child process run
// every flow with random 32-byte canaries as secret values. Afterwards the SQLite file with its
// WAL and shared memory, every file in the data directory and the test's temp dir, the server's
// stdout and stderr, every CLI message and every SDK output are searched for each canary (raw,
// hex, base64, base64url, URL-encoded, UTF-16LE) and for every token, seed and auth key used.
// The only places a secret may appear are the two the owner asked for: `secret get`'s stdout and
// the agents' token files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  BIN,
  cleanEnv,
  type E2eContext,
  e2eContext,
  type Finished,
  REPO_ROOT,
  runProcess,
  type ServerProcess,
  startKeyhole,
} from "../e2e/harness.js";
import {
  digest,
  encodingsOf,
  findNeedles,
  type Needle,
  tokenNeedles,
} from "../test-support/needles.js";

let ctx: E2eContext;
let server: ServerProcess;
/** Every byte any process printed that is not an intended secret output. */
const transcripts: { label: string; bytes: Buffer }[] = [];

/** 32 random bytes; not ending in CR/LF, which `secret set` strips from stdin as a line end. */
function canary(): Buffer {
  for (;;) {
    const bytes = randomBytes(32);
    if (bytes[31] !== 0x0a && bytes[31] !== 0x0d) return bytes;
  }
}

const canaries = { alpha: canary(), beta: canary(), alphaRotated: canary() };

before(async () => {
  ctx = await e2eContext();
  const dataDir = join(ctx.dir, "data");
  const live = startKeyhole(
    ["server", "--data-dir", dataDir, "--port", "0", "--log-level", "debug"],
    cleanEnv(ctx.dir),
  );
  const [, url] = await live.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const [, code] = await live.waitFor(/bootstrap code: (\S+)/);
  server = { process: live, url: url as string, bootstrapCode: code ?? null, dataDir };
  ctx.env.KEYHOLE_ADDR = server.url;
});

after(async () => {
  await server?.process.stop("SIGTERM");
  await ctx.cleanup();
});

function record(label: string, run: Finished): Finished {
  transcripts.push({ label: `${label} stderr`, bytes: Buffer.from(run.stderr) });
  transcripts.push({ label: `${label} stdout`, bytes: Buffer.from(run.stdout) });
  return run;
}

async function keyhole(args: string[], input?: Buffer): Promise<Finished> {
  const run = await ctx.keyhole(args, input === undefined ? {} : { input });
  return record(`keyhole ${args.join(" ")}`, run);
}

async function ok(args: string[], input?: Buffer): Promise<Finished> {
  const run = await keyhole(args, input);
  assert.equal(run.code, 0, `keyhole ${args.join(" ")}: ${run.stderr}`);
  return run;
}

// The agent side, in its own process: fetch with `use`, print only a digest of the value, and on
// failure print the error's code, message, stack and util.inspect of the error and the Vault.
const AGENT_SCRIPT = `
import { inspect } from "node:util";
import { createHash } from "node:crypto";
import { Vault } from "@keyhole/sdk";
const vault = new Vault();
try {
  await vault.use(process.argv[1], async (bytes) => {
    console.log("digest " + createHash("sha256").update(bytes).digest("hex"));
  });
} catch (error) {
  console.log("error " + error.code);
  console.log(String(error.message), String(error.stack));
  console.log(inspect(error, { showHidden: true, depth: 10 }));
}
console.log(inspect(vault, { showHidden: true, depth: 10 }), JSON.stringify(vault), String(vault));
vault.close();
`;

async function agentFetch(tokenFile: string, name: string): Promise<string> {
  const run = await runProcess(
    process.execPath,
    ["--input-type=module", "-e", AGENT_SCRIPT, name],
    {
      cwd: REPO_ROOT,
      env: cleanEnv(ctx.dir, { KEYHOLE_ADDR: server.url, KEYHOLE_TOKEN_FILE: tokenFile }),
    },
  );
  record(`agent ${name}`, run);
  assert.equal(run.code, 0, run.stderr);
  const line = run.stdout.split("\n")[0] ?? "";
  return line;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

test("every flow runs with canaries, and no canary, token, seed or auth key is found anywhere", async () => {
  const tokenFile = (name: string) => join(ctx.dir, `${name}.token`);

  // Set-up and the owner's writes.
  await ok(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  await ok(["secret", "set", "alpha"], canaries.alpha);
  await ok(["secret", "set", "beta"], canaries.beta);
  await ok(["agent", "create", "agent-a", "--grant", "alpha", "--token-file", tokenFile("a")]);
  await ok([
    "agent",
    "create",
    "agent-b",
    "--grant",
    "beta",
    "--expires",
    "30d",
    "--token-file",
    tokenFile("b"),
  ]);
  const tokenA1 = (await readFile(tokenFile("a"), "utf8")).trim();
  const tokenB = (await readFile(tokenFile("b"), "utf8")).trim();

  // Fetches, granted and not.
  assert.equal(await agentFetch(tokenFile("a"), "alpha"), `digest ${digest(canaries.alpha)}`);
  assert.equal(await agentFetch(tokenFile("b"), "beta"), `digest ${digest(canaries.beta)}`);
  assert.equal(await agentFetch(tokenFile("a"), "beta"), "error not_found");

  // Grants, a new version, rotation, revocation.
  await ok(["grant", "add", "agent-b", "alpha", "--expires", "1h", "--hosts", "api.example.com"]);
  assert.equal(await agentFetch(tokenFile("b"), "alpha"), `digest ${digest(canaries.alpha)}`);
  await ok(["secret", "set", "alpha"], canaries.alphaRotated);
  assert.equal(
    await agentFetch(tokenFile("a"), "alpha"),
    `digest ${digest(canaries.alphaRotated)}`,
  );
  assert.equal(
    await agentFetch(tokenFile("b"), "alpha"),
    `digest ${digest(canaries.alphaRotated)}`,
  );
  await ok(["agent", "rotate", "agent-a", "--token-file", tokenFile("a2")]);
  const tokenA2 = (await readFile(tokenFile("a2"), "utf8")).trim();
  assert.equal(await agentFetch(tokenFile("a"), "alpha"), "error unauthenticated");
  assert.equal(
    await agentFetch(tokenFile("a2"), "alpha"),
    `digest ${digest(canaries.alphaRotated)}`,
  );
  await ok(["grant", "rm", "agent-b", "alpha"]);
  assert.equal(await agentFetch(tokenFile("b"), "alpha"), "error not_found");
  await ok(["agent", "revoke", "agent-b"]);
  assert.equal(await agentFetch(tokenFile("b"), "beta"), "error unauthenticated");

  // Reads and listings of every kind, and some failures.
  for (const args of [
    ["secret", "list", "--json"],
    ["secret", "history", "alpha", "--json"],
    ["agent", "list", "--json"],
    ["agent", "show", "agent-a", "--json"],
    ["grant", "list", "--json"],
    ["audit", "--json", "--limit", "1000"],
    ["audit", "verify"],
  ]) {
    await ok(args);
  }
  assert.equal((await keyhole(["secret", "get", "no-such-secret"])).code, 1);
  assert.equal((await keyhole(["grant", "add", "agent-b", "alpha"])).code, 1);
  // The owner's own read: its stdout is the one intended copy of the value, so it is checked
  // for the right bytes and kept out of the transcripts.
  const get = spawnSync(process.execPath, [BIN, "secret", "get", "alpha"], {
    cwd: REPO_ROOT,
    env: cleanEnv(ctx.dir, ctx.env),
    input: "",
  });
  assert.equal(get.status, 0, get.stderr.toString());
  transcripts.push({ label: "secret get stderr", bytes: get.stderr });
  assert.equal(digest(get.stdout), digest(canaries.alphaRotated));

  const needles: Needle[] = [
    ...encodingsOf("canary alpha", canaries.alpha),
    ...encodingsOf("canary beta", canaries.beta),
    ...encodingsOf("canary alpha v2", canaries.alphaRotated),
    ...(await tokenNeedles("agent-a (first)", tokenA1)),
    ...(await tokenNeedles("agent-a (rotated)", tokenA2)),
    ...(await tokenNeedles("agent-b", tokenB)),
  ];

  // The database while the server runs (WAL not yet checkpointed) ...
  const places: { label: string; bytes: Buffer }[] = [];
  const scanFiles = async (when: string) => {
    for (const file of await filesUnder(ctx.dir)) {
      if (file.endsWith(".token")) continue; // the agents' own token files: intended
      places.push({ label: `${when} ${file.slice(ctx.dir.length)}`, bytes: await readFile(file) });
    }
  };
  await scanFiles("running:");
  const walFiles = (await readdir(server.dataDir)).filter((f) => /-wal$|-shm$|-journal$/.test(f));
  assert.ok(walFiles.length > 0, "the WAL is searched while it still holds pages");
  assert.ok((await stat(join(server.dataDir, walFiles[0] as string))).size >= 0);

  // ... and after a clean stop, plus everything the server printed.
  await server.process.stop("SIGTERM");
  await scanFiles("stopped:");
  places.push({ label: "server stdout", bytes: Buffer.from(server.process.stdout()) });
  places.push({ label: "server stderr", bytes: Buffer.from(server.process.stderr()) });
  places.push(...transcripts);

  assert.ok(
    server.process.stderr().split("\n").length > 30,
    "the server logged every request at debug level (the search has something to search)",
  );
  const hits = places.flatMap((p) =>
    findNeedles(p.bytes, needles).map((n) => `${n} in ${p.label}`),
  );
  assert.deepEqual(hits, []);

  // The needles can be found: the same search finds them in the places they are meant to be.
  assert.notDeepEqual(findNeedles(await readFile(tokenFile("a2")), needles), []);
  assert.notDeepEqual(findNeedles(get.stdout, needles), []);
});
