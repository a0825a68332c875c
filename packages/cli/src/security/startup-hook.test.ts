// SECURITY-TESTS #19, the start-up attack reproduced: the LiteLLM `.pth` payload (Python) and its
// Node twin (`NODE_OPTIONS=--require harvester.cjs`) run before the agent's own code and dump
// everything the process was started with: the environment, the raw `/proc/self/environ` and
// argv. With plain environment variables the dump holds the key (and the token, when the agent
// gets it from the environment). Under `keyhole run` the agent's call to a real local upstream
// still succeeds, but no dump from any process the hook reaches holds the token or the key: only
// a per-run placeholder, which the broker refuses once the run has ended and the real upstream
// refuses always. The README shows the two dumps side by side.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
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
  startServerProcess,
} from "../e2e/harness.js";
import {
  encodingsOf,
  findNeedles,
  type Needle,
  textEncodingsOf,
  tokenNeedles,
} from "../test-support/needles.js";

/** The fixtures are not compiled: read them from the source tree. */
const FIXTURES = join(REPO_ROOT, "packages", "cli", "src", "security", "fixtures");
const HARVESTER = join(FIXTURES, "harvester.cjs");
const SECRET = "up-api-key";
/** The capability format of the broker contract: `khc_` + 32 bytes in base64url. */
const PLACEHOLDER = /khc_[A-Za-z0-9_-]{43}/;
const TIMEOUT_MS = 30_000;

/** A unique value the upstream accepts, as text because it travels in a header. */
const canary = `sk-canary-${randomBytes(32).toString("base64url")}`;

let ctx: E2eContext;
let server: ServerProcess;
let upstream: http.Server;
let upstreamUrl: string;
let tokenFile: string;
let token: string;
let needles: Needle[];
/** Requests the upstream accepted (it saw the canary) and refused. */
const seen = { accepted: 0, refused: 0 };

/**
 * The real interpreter behind `python3`, resolved with the runner's own environment: on machines
 * with pyenv, `python3` is a shim that breaks under another HOME. Null when there is none.
 */
function findPython(): string | null {
  const found = spawnSync("python3", ["-c", "import sys; print(sys.executable)"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  const path = found.status === 0 ? found.stdout.trim() : "";
  return path.startsWith("/") ? path : null;
}
const python = findPython();

before(async () => {
  ctx = await e2eContext();
  server = await startServerProcess(join(ctx.dir, "data"), cleanEnv(ctx.dir));
  ctx.env.KEYHOLE_ADDR = server.url;

  // The real service: only the real key gets a 200.
  upstream = http.createServer((req, res) => {
    req.resume();
    const ok = req.headers.authorization === `Bearer ${canary}`;
    if (ok) seen.accepted++;
    else seen.refused++;
    res.writeHead(ok ? 200 : 401, { "content-type": "text/plain" });
    res.end(ok ? "ok\n" : "unauthorized\n");
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const port = (upstream.address() as AddressInfo).port;
  upstreamUrl = `http://127.0.0.1:${port}`;

  tokenFile = join(ctx.dir, "agent.token");
  await ok(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  await ok(["secret", "set", SECRET], canary);
  await ok(["agent", "create", "bot", "--token-file", tokenFile]);
  await ok(["grant", "add", "bot", SECRET, "--hosts", `127.0.0.1:${port}`]);
  token = (await readFile(tokenFile, "utf8")).trim();
  const body = token.slice(4);
  needles = [
    ...encodingsOf("key", Buffer.from(canary)),
    ...(await tokenNeedles("agent", token)),
    // The token's base64url body without its prefix, and the stretch of it that encodes the seed.
    ...textEncodingsOf("token body", body),
    { label: "token seed (base64url stretch)", bytes: Buffer.from(body.slice(22, 64)) },
  ];

  await writeFile(
    join(ctx.dir, "agent.cjs"),
    [
      "// The agent: an ordinary client reading its base URL and key from the environment.",
      'fetch(process.env.UP_BASE_URL + "/check", {',
      '  headers: { authorization: "Bearer " + process.env.UP_API_KEY },',
      "}).then(",
      '  (res) => console.log("status=" + res.status),',
      "  (err) => {",
      '    console.log("error=" + (err.cause?.code ?? err.message));',
      "    process.exitCode = 3;",
      "  },",
      ");",
      "",
    ].join("\n"),
  );
  await writeFile(
    join(ctx.dir, "agent.py"),
    [
      "# The agent: an ordinary client reading its base URL and key from the environment.",
      "import os, urllib.error, urllib.request",
      "req = urllib.request.Request(os.environ['UP_BASE_URL'] + '/check',",
      "    headers={'Authorization': 'Bearer ' + os.environ['UP_API_KEY']})",
      "try:",
      "    with urllib.request.urlopen(req, timeout=20) as res:",
      "        print('status=%d' % res.status)",
      "except urllib.error.HTTPError as e:",
      "    print('status=%d' % e.code)",
      "",
    ].join("\n"),
  );
});

after(async () => {
  upstream?.closeAllConnections();
  await new Promise((resolve) => upstream?.close(resolve) ?? resolve(undefined));
  await server?.process.stop("SIGTERM");
  await ctx?.cleanup();
});

async function ok(args: string[], input?: string): Promise<Finished> {
  const run = await ctx.keyhole(args, input === undefined ? {} : { input });
  assert.equal(run.code, 0, `keyhole ${args.join(" ")}: ${run.stderr}`);
  return run;
}

/** One harvested process: its file, the raw bytes, and what it was started as. */
interface Dump {
  readonly file: string;
  readonly bytes: Buffer;
  readonly argv: string[];
  readonly env: Record<string, string>;
}

/** The one-line JSON section after `== title ==` in a dump. */
function jsonSection(bytes: Buffer, titles: string[]): unknown {
  for (const title of titles) {
    const marker = Buffer.from(`== ${title} ==\n`);
    const start = bytes.indexOf(marker);
    if (start === -1) continue;
    const from = start + marker.length;
    return JSON.parse(bytes.subarray(from, bytes.indexOf(0x0a, from)).toString("utf8"));
  }
  throw new Error(`no ${titles.join(" or ")} section in the dump`);
}

async function readDumps(dir: string): Promise<Dump[]> {
  const dumps: Dump[] = [];
  for (const file of (await readdir(dir)).sort()) {
    const bytes = await readFile(join(dir, file));
    dumps.push({
      file,
      bytes,
      argv: jsonSection(bytes, ["process.argv", "sys.argv"]) as string[],
      env: jsonSection(bytes, ["process.env", "os.environ"]) as Record<string, string>,
    });
  }
  return dumps;
}

/** What each dump leaks, as `file: needle` lines. */
function leaks(dumps: readonly Dump[]): string[] {
  return dumps.flatMap((d) => findNeedles(d.bytes, needles).map((n) => `${d.file}: ${n}`));
}

/** A GET with the given headers: the status, or the connection error's code. */
function get(url: string, headers: Record<string, string>): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get(url, { headers, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** A fresh, empty directory for one scenario's dumps. */
async function harvestDir(name: string): Promise<string> {
  const dir = join(ctx.dir, "harvest", name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** `keyhole run` with the test route, the agent's token file and the parent's environment. */
function keyholeRun(command: string[], parentEnv: Record<string, string>): Promise<Finished> {
  const route = `up=${upstreamUrl},secret=${SECRET},header=Authorization: Bearer {{secret}}`;
  return runProcess(
    process.execPath,
    [
      BIN,
      "run",
      "--route",
      route,
      "--allow-plain-http-upstream",
      "--token-file",
      tokenFile,
      "--inherit-env",
      "--",
      ...command,
    ],
    {
      env: cleanEnv(ctx.dir, {
        KEYHOLE_ADDR: server.url,
        KEYHOLE_TEST: "1",
        ...parentEnv,
      }),
      timeoutMs: TIMEOUT_MS,
    },
  );
}

/**
 * The checks shared by both languages once a run has ended: the agent's call went through, the
 * hook ran in the agent, nothing it or `keyhole run` could see holds the token or the key, and
 * the placeholder it did see is dead at the broker and worthless upstream.
 */
async function assertBrokerRun(
  run: Finished,
  dumps: readonly Dump[],
  agentScript: string,
  acceptedBefore: number,
): Promise<void> {
  assert.equal(run.code, 0, `keyhole run failed: ${run.stderr}`);
  assert.match(run.stdout, /status=200/, "the agent's call went through the broker");
  assert.equal(seen.accepted, acceptedBefore + 1, "the upstream saw the real key exactly once");

  // `keyhole run`'s own argv names the agent script too, after `--`.
  const agent = dumps.filter((d) => d.argv.includes(agentScript) && !d.argv.includes(BIN));
  assert.equal(agent.length, 1, `the hook ran in the agent: ${dumps.map((d) => d.file)}`);
  const [agentDump] = agent as [Dump];
  // Every other dump is `keyhole run` itself; a dump from the broker would mean the hook reached
  // the process that reads the token.
  const others = dumps.filter((d) => d !== agentDump);
  for (const d of others)
    assert.ok(
      d.argv.includes(BIN) && d.argv.includes("run"),
      `a dump from an unexpected process: ${d.file} ${JSON.stringify(d.argv)}`,
    );

  assert.deepEqual(leaks(dumps), [], "no dump holds the token or the key");
  const printed = Buffer.from(run.stdout + run.stderr);
  assert.deepEqual(findNeedles(printed, needles), [], "keyhole run printed neither");
  assert.deepEqual(
    Object.keys(agentDump.env).filter((k) => k.startsWith("KEYHOLE_")),
    [],
    "the agent gets no KEYHOLE_* variable",
  );
  assert.ok(!agentDump.bytes.includes(tokenFile), "the agent does not learn the token file path");

  // What the harvester did get: a placeholder and the broker's address.
  const placeholder = agentDump.env.UP_API_KEY ?? "";
  const baseUrl = agentDump.env.UP_BASE_URL ?? "";
  assert.match(placeholder, new RegExp(`^${PLACEHOLDER.source}$`));
  assert.ok(!placeholder.includes(canary) && !canary.includes(placeholder.slice(4)));
  assert.match(baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/up$/);
  assert.ok(agentDump.bytes.includes(placeholder), "the dump holds the placeholder");

  // Replayed by the attacker after the run: the broker is gone (or refuses it) ...
  const atBroker = await get(`${baseUrl}/check`, { authorization: `Bearer ${placeholder}` });
  assert.ok(
    atBroker === "ECONNREFUSED" || atBroker === 401,
    `the placeholder is refused at the broker after the run: ${atBroker}`,
  );
  // ... and the real service never took it.
  const refusedBefore = seen.refused;
  assert.equal(await get(`${upstreamUrl}/check`, { authorization: `Bearer ${placeholder}` }), 401);
  assert.equal(seen.refused, refusedBefore + 1);
}

/** The baseline: the call worked, and the one dump (the agent's) holds the key and the token. */
async function assertPlainRunLeaked(run: Finished, dir: string, agentScript: string) {
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /status=200/);
  const dumps = await readDumps(dir);
  assert.equal(dumps.length, 1);
  const [dump] = dumps as [Dump];
  assert.ok(dump.argv.includes(agentScript));
  assert.ok(dump.bytes.includes(`UP_API_KEY=${canary}\0`), "in the raw /proc/self/environ");
  const found = leaks(dumps);
  assert.ok(found.includes(`${dump.file}: key (raw)`), found.join("\n"));
  assert.ok(found.includes(`${dump.file}: agent token (text)`), found.join("\n"));
}

test("node, plain env vars: the --require hook's dump holds the key and the token", async () => {
  const dir = await harvestDir("node-plain");
  const agentScript = join(ctx.dir, "agent.cjs");
  const run = await runProcess(process.execPath, [agentScript], {
    env: cleanEnv(ctx.dir, {
      UP_BASE_URL: upstreamUrl,
      UP_API_KEY: canary,
      KEYHOLE_ADDR: server.url,
      KEYHOLE_TOKEN: token,
      NODE_OPTIONS: `--require ${HARVESTER}`,
      HARVEST_DIR: dir,
    }),
    timeoutMs: TIMEOUT_MS,
  });
  await assertPlainRunLeaked(run, dir, agentScript);
});

test("node under keyhole run: the call succeeds; no dump holds the token or the key", async () => {
  const dir = await harvestDir("node-run");
  const agentScript = join(ctx.dir, "agent.cjs");
  const acceptedBefore = seen.accepted;
  // The hook sits in the parent's environment, so it runs in every Node process that inherits
  // it: `keyhole run` itself and the agent (`--inherit-env` passes NODE_OPTIONS on).
  const run = await keyholeRun([process.execPath, agentScript], {
    NODE_OPTIONS: `--require ${HARVESTER}`,
    HARVEST_DIR: dir,
  });
  await assertBrokerRun(run, await readDumps(dir), agentScript, acceptedBefore);
});

const noPython = python === null ? "no python3 on this machine" : false;

/** A user base whose site-packages holds `harvest.pth` (`import harvest_hook`). */
async function pthUserBase(): Promise<string> {
  const userBase = join(ctx.dir, "userbase");
  const site = spawnSync(
    python as string,
    ["-c", "import site; print(site.getusersitepackages())"],
    {
      encoding: "utf8",
      env: cleanEnv(ctx.dir, { PYTHONUSERBASE: userBase }),
      timeout: 10_000,
    },
  );
  assert.equal(site.status, 0, site.stderr);
  const sitePackages = site.stdout.trim();
  assert.ok(sitePackages.startsWith(userBase), sitePackages);
  await mkdir(sitePackages, { recursive: true });
  await copyFile(join(FIXTURES, "harvest.pth"), join(sitePackages, "harvest.pth"));
  await copyFile(join(FIXTURES, "harvest_hook.py"), join(sitePackages, "harvest_hook.py"));
  return userBase;
}

test("python, plain env vars: the .pth hook's dump holds the key", { skip: noPython }, async () => {
  const dir = await harvestDir("python-plain");
  const agentScript = join(ctx.dir, "agent.py");
  const run = await runProcess(python as string, [agentScript], {
    env: cleanEnv(ctx.dir, {
      UP_BASE_URL: upstreamUrl,
      UP_API_KEY: canary,
      KEYHOLE_ADDR: server.url,
      KEYHOLE_TOKEN: token,
      PYTHONUSERBASE: await pthUserBase(),
      HARVEST_DIR: dir,
    }),
    timeoutMs: TIMEOUT_MS,
  });
  await assertPlainRunLeaked(run, dir, agentScript);
});

test("python under keyhole run: the call succeeds; the .pth dump holds no token and no key", {
  skip: noPython,
}, async () => {
  const dir = await harvestDir("python-run");
  const agentScript = join(ctx.dir, "agent.py");
  const acceptedBefore = seen.accepted;
  const run = await keyholeRun([python as string, agentScript], {
    PYTHONUSERBASE: await pthUserBase(),
    HARVEST_DIR: dir,
  });
  await assertBrokerRun(run, await readDumps(dir), agentScript, acceptedBefore);
});
