// `keyhole run` end to end: a real `keyhole server`, a real local upstream that checks the
// credential, and a Node child that sees only a base URL and a per-run capability, never the
// token, its file, or the secret. Exit codes and signals pass through; the broker dies with the run.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { findNeedles } from "../test-support/needles.js";
import {
  agentEnv,
  bearerRoute,
  processChildren,
  secretNeedles,
  setUpWorld,
  startBroker,
  stopAll,
  type World,
  waitGone,
} from "./broker.test.helper.js";
import { BIN, type Finished, runProcess, startKeyhole } from "./harness.js";
import { request, startUpstream, type Upstream } from "./upstream.test.helper.js";

const SECRET = "upstream-token"; // its conventional variable: UPSTREAM_TOKEN

let world: World;
let up: Upstream;

before(async () => {
  const value = `sk-live-${randomBytes(24).toString("base64url")}`;
  up = await startUpstream(value);
  world = await setUpWorld({ secret: SECRET, value, agent: "run-bot", hosts: [up.host] });
});
after(async () => {
  await stopAll(world, [], [up?.close]);
});

const ROUTE = () => bearerRoute("up", up.url, SECRET);

/** A child that calls the upstream through the broker and prints what it saw, as JSON. */
const CLIENT = `
const fs = require("node:fs");
(async () => {
  const res = await fetch(process.env.UP_BASE_URL + "/echo-json", {
    headers: { authorization: "Bearer " + process.env.UP_API_KEY },
  });
  const body = await res.json();
  let environ = "";
  try { environ = fs.readFileSync("/proc/self/environ", "latin1"); } catch {}
  process.stdout.write(JSON.stringify({ status: res.status, body, env: process.env, environ }));
})();
`;

interface ChildReport {
  status: number;
  body: { path: string };
  env: Record<string, string>;
  environ: string;
}

/** `keyhole run [args] -- node -e SCRIPT`, with the agent's environment plus `env`. */
function run(args: string[], script: string, env: Record<string, string> = {}): Promise<Finished> {
  return runProcess(
    process.execPath,
    [BIN, "run", "--allow-plain-http-upstream", ...args, "--", process.execPath, "-e", script],
    { env: agentEnv(world, env), timeoutMs: 30_000 },
  );
}

function report(finished: Finished): ChildReport {
  assert.equal(finished.code, 0, `exit ${finished.code} ${finished.signal}: ${finished.stderr}`);
  return JSON.parse(finished.stdout) as ChildReport;
}

test("keyhole run: the child calls the upstream through the broker; exit 0", async () => {
  const child = report(await run(["--token-file", world.tokenFile, "--route", ROUTE()], CLIENT));
  assert.equal(child.status, 200);
  assert.equal(child.body.path, "/echo-json");
  assert.equal(up.requests.at(-1)?.headers.authorization, `Bearer ${world.value}`);
  assert.ok(!JSON.stringify(up.requests.at(-1)?.headers).includes(child.env.UP_API_KEY ?? "-"));
});

/** Asserts the child's environment is clean: no KEYHOLE_*, token, seed, token path or secret. */
async function assertCleanChild(child: ChildReport): Promise<void> {
  const names = Object.keys(child.env);
  assert.deepEqual(
    names.filter((n) => n.startsWith("KEYHOLE_")),
    [],
  );
  const dump = Buffer.from(JSON.stringify(child.env) + child.environ);
  assert.deepEqual(findNeedles(dump, await secretNeedles(world)), []);
  assert.ok(!dump.includes(world.tokenFile), "the token file's path reached the child");
  assert.match(child.env.UP_BASE_URL ?? "", /^http:\/\/127\.0\.0\.1:\d+\/up$/);
  assert.match(child.env.UP_API_KEY ?? "", /^khc_[A-Za-z0-9_-]{43}$/);
}

test("the child's environment holds the route's variables and nothing of the token or secret", async () => {
  const finished = await run(["--route", ROUTE()], CLIENT, {
    KEYHOLE_TOKEN_FILE: world.tokenFile,
    LANG: "C.UTF-8",
    NOT_PASSED: "parent-only",
  });
  const child = report(finished);
  assert.equal(child.status, 200);
  await assertCleanChild(child);
  // The contract's list, plus COLORTERM and LANGUAGE, which `keyhole run --help` documents.
  const base = "PATH|HOME|USER|LOGNAME|SHELL|TERM|COLORTERM|LANG|LANGUAGE|LC_\\w+|TZ|TMPDIR";
  const allowed = new RegExp(`^(${base}|UP_BASE_URL|UP_API_KEY)$`);
  assert.deepEqual(
    Object.keys(child.env).filter((n) => !allowed.test(n)),
    [],
  );
  assert.equal(child.env.LANG, "C.UTF-8");
  assert.equal(child.env.NOT_PASSED, undefined);
});

test("--inherit-env passes the parent's variables minus KEYHOLE_* and the route's", async () => {
  const finished = await run(
    ["--token-file", world.tokenFile, "--route", ROUTE(), "--inherit-env"],
    CLIENT,
    {
      FOO_PARENT: "kept",
      KEYHOLE_EXTRA: "dropped",
      KEYHOLE_TOKEN_FILE: world.tokenFile,
      UP_BASE_URL: "http://parent.invalid",
    },
  );
  const child = report(finished);
  assert.equal(child.status, 200);
  assert.equal(child.env.FOO_PARENT, "kept");
  assert.notEqual(child.env.UP_BASE_URL, "http://parent.invalid");
  await assertCleanChild(child);
});

const PRINT_ENV = `process.stdout.write(JSON.stringify(process.env));`;

test("--env NAME=VALUE sets and --env NAME copies; --env KEYHOLE_X is a usage error (exit 2)", async () => {
  const args = ["--token-file", world.tokenFile, "--route", ROUTE()];
  const finished = await run([...args, "--env", "GREETING=hello", "--env", "COPIED"], PRINT_ENV, {
    COPIED: "from-parent",
    NOT_COPIED: "parent-only",
  });
  assert.equal(finished.code, 0, finished.stderr);
  const env = JSON.parse(finished.stdout) as Record<string, string>;
  assert.equal(env.GREETING, "hello");
  assert.equal(env.COPIED, "from-parent");
  assert.equal(env.NOT_COPIED, undefined);
  for (const bad of ["KEYHOLE_X=1", "KEYHOLE_ADDR"]) {
    const refused = await run([...args, "--env", bad], `process.stdout.write("child ran")`);
    assert.equal(refused.code, 2, `--env ${bad}: ${refused.stderr}`);
    assert.match(refused.stderr, /^keyhole: .*KEYHOLE_/m);
    assert.equal(refused.stdout, "");
  }
});

test("exit codes and signals pass through; a missing command exits 127", async () => {
  const args = ["--token-file", world.tokenFile, "--route", ROUTE()];
  const seven = await run(args, "process.exit(7)");
  assert.equal(seven.code, 7, seven.stderr);
  const killed = await run(
    args,
    `process.kill(process.pid, "SIGTERM"); setTimeout(() => {}, 5000)`,
  );
  assert.deepEqual([killed.code, killed.signal], [null, "SIGTERM"], killed.stderr);
  const missing = await runProcess(
    process.execPath,
    [BIN, "run", "--allow-plain-http-upstream", ...args, "--", "keyhole-e2e-no-such-command"],
    { env: agentEnv(world), timeoutMs: 30_000 },
  );
  assert.equal(missing.code, 127, missing.stderr);
});

/** Calls `url` with the capability; "refused" when nothing listens any more. */
async function tryCapability(url: string, capability: string): Promise<number | "refused"> {
  try {
    return (await request(url, { headers: { authorization: `Bearer ${capability}` } })).status;
  } catch (error) {
    assert.equal((error as { code?: string }).code, "ECONNREFUSED", String(error));
    return "refused";
  }
}

test("the capability is refused once the run has ended, and by the real upstream always", async () => {
  const child = report(await run(["--token-file", world.tokenFile, "--route", ROUTE()], CLIENT));
  assert.equal(child.status, 200, "the capability worked during the run");
  const capability = child.env.UP_API_KEY ?? "";
  const afterRun = await tryCapability(`${child.env.UP_BASE_URL}/echo-json`, capability);
  assert.ok(afterRun === "refused" || afterRun === 401, `after the run: ${afterRun}`);
  assert.equal(await tryCapability(`${up.url}/echo-json`, capability), 401);
  assert.equal(up.requests.at(-1)?.authorized, false);
});

/** A child that traps $SIG, writes it to $MARKER and exits 0; it prints its URL and capability. */
const TRAP = `
  process.on(process.env.SIG, () => {
    require("node:fs").writeFileSync(process.env.MARKER, process.env.SIG);
    process.exit(0);
  });
  console.log("ready " + process.env.UP_BASE_URL + " " + process.env.UP_API_KEY + " " + process.pid);
  setInterval(() => {}, 1000);
`;

/** `keyhole run -- node -e TRAP` in the background, once the child is ready. */
async function startTrappingRun(signal: NodeJS.Signals) {
  const marker = join(world.ctx.dir, `child-got-${signal}`);
  const args = ["run", "--allow-plain-http-upstream", "--token-file", world.tokenFile];
  args.push("--route", ROUTE(), "--env", `MARKER=${marker}`, "--env", `SIG=${signal}`);
  const live = startKeyhole([...args, "--", process.execPath, "-e", TRAP], agentEnv(world));
  const [, url, capability, pid] = (await live.waitFor(/ready (\S+) (\S+) (\d+)\n/)) as string[];
  const call = () => tryCapability(`${url}/echo-json`, capability as string);
  return { live, marker, call, childPid: Number(pid) };
}

/** The broker `keyhole run` started: its child that is not the command (Linux only). */
async function runBroker(runPid: number, childPid: number) {
  const others = (await processChildren(runPid)).filter((p) => p.pid !== childPid);
  assert.equal(others.length, 1, `run's other children: ${JSON.stringify(others)}`);
  return others[0] as { pid: number; cmdline: string };
}

const linuxOnly = { skip: process.platform !== "linux" && "needs Linux /proc" };

test(
  "SIGTERM to keyhole run reaches the child; the broker is gone afterwards",
  linuxOnly,
  async () => {
    const { live, marker, call, childPid } = await startTrappingRun("SIGTERM");
    try {
      assert.equal(await call(), 200, "the capability works during the run");
      const broker = await runBroker(live.child.pid ?? 0, childPid);
      const environ = await readFile(`/proc/${broker.pid}/environ`);
      const dump = Buffer.concat([environ, Buffer.from(broker.cmdline)]);
      const found = findNeedles(dump, await secretNeedles(world));
      assert.deepEqual(found, [], "the run's broker holds the token in its environ or cmdline");
      const exit = await live.stop("SIGTERM");
      assert.deepEqual(exit, { code: 0, signal: null }, live.stderr());
      assert.equal(await readFile(marker, "utf8"), "SIGTERM");
      assert.equal(await call(), "refused", "the broker still answers after the run ended");
      assert.equal(await waitGone(broker.pid, 3000), true, "the broker outlived the run");
    } finally {
      await live.stop("SIGKILL");
    }
  },
);

test("SIGHUP and SIGINT (no terminal) to keyhole run reach the child", async () => {
  for (const signal of ["SIGHUP", "SIGINT"] as const) {
    const { live, marker } = await startTrappingRun(signal);
    try {
      const exit = await live.stop(signal);
      assert.deepEqual(exit, { code: 0, signal: null }, `${signal}: ${live.stderr()}`);
      assert.equal(await readFile(marker, "utf8"), signal);
    } finally {
      await live.stop("SIGKILL");
    }
  }
});

test(
  "when keyhole run is killed (SIGKILL), its broker stops and the capability is refused",
  linuxOnly,
  async () => {
    const { live, call, childPid } = await startTrappingRun("SIGUSR2");
    try {
      const broker = await runBroker(live.child.pid ?? 0, childPid);
      assert.equal(await call(), 200);
      await live.stop("SIGKILL");
      assert.equal(await waitGone(broker.pid, 5000), true, "the broker outlived a killed run");
      assert.equal(await call(), "refused");
    } finally {
      // The orphaned command is ours to stop: keyhole run could not.
      if (!(await waitGone(childPid, 0))) process.kill(childPid, "SIGKILL");
    }
  },
);

test("keyhole run refuses to start with a credential in its environment: the child could read run's environ", async () => {
  // The token, the owner's passphrase, the key the route stands in for (the variable that gets
  // the capability, and the one named after the secret).
  for (const name of ["KEYHOLE_TOKEN", "KEYHOLE_PASSPHRASE", "UP_API_KEY", "UPSTREAM_TOKEN"]) {
    const finished = await run(["--token-file", world.tokenFile, "--route", ROUTE()], CLIENT, {
      [name]: world.value,
    });
    assert.equal(finished.code, 2, name);
    assert.match(finished.stderr, new RegExp(`unset ${name} first`));
    assert.equal(finished.stdout, "", "the child never ran");
    assert.ok(!finished.stderr.includes(world.value), "the value is not echoed");
  }
});

test("--attach runs the child against a running broker's --agent-env file", async () => {
  const envFile = join(world.ctx.dir, "attach.env");
  const broker = await startBroker(world, [ROUTE()], [], ["--agent-env", envFile]);
  try {
    const finished = await runProcess(
      process.execPath,
      [BIN, "run", "--attach", envFile, "--", process.execPath, "-e", CLIENT],
      { env: agentEnv(world), timeoutMs: 30_000 },
    );
    const child = report(finished);
    assert.equal(child.status, 200);
    assert.match(child.env.UP_API_KEY ?? "", /^khc_/);
    for (const name of Object.keys(child.env)) assert.ok(!name.startsWith("KEYHOLE_"), name);
    const mixed = await runProcess(
      process.execPath,
      [BIN, "run", "--attach", envFile, "--route", ROUTE(), "--", "true"],
      { env: agentEnv(world), timeoutMs: 30_000 },
    );
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /--route belongs to that broker/);
  } finally {
    await broker.live.stop("SIGTERM");
  }
});
