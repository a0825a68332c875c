// SECURITY-TESTS #17, atomic rotation: `keyhole agent rotate NAME --token-file PATH` is killed
// (SIGKILL, through the test-only crash points of test-crash.ts) at each of its steps, and a real
// `keyhole server` is killed just before and just after the rotate transaction commits. After
// each kill, of the old token and the new one (in PATH or PATH.pending) exactly one works, and
// it opens every granted secret to its value. Running the same command again (the documented
// recovery) leaves exactly one working token, in PATH, with no PATH.pending; it only finishes a
// committed rotate rather than rotating again; and `keyhole audit verify` passes.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { Vault } from "@keyhole/sdk";
import { ROTATE_CRASH_STEPS, type RotateCrashStep } from "../test-crash.js";
import {
  cleanEnv,
  type E2eContext,
  e2eContext,
  type Finished,
  type LiveProcess,
  startKeyhole,
  startServerProcess,
} from "./harness.js";

const SECRETS = ["alpha", "beta", "gamma"] as const;
const SERVER_STEPS = ["agent.rotate:before-commit", "agent.rotate:after-commit"] as const;
type Step = RotateCrashStep | (typeof SERVER_STEPS)[number];
/** The steps after which the server has committed: the recovery only finishes the rotate. */
const COMMITTED: readonly Step[] = [
  "rotate:answered",
  "rotate:pinned",
  "agent.rotate:after-commit",
];

const DEAD = ["unauthenticated", "rate_limited"];

let ctx: E2eContext;
let dataDir: string;
let server: LiveProcess;
let addr = "";
const values = new Map<string, string>();
let agents = 0;

/** Starts `keyhole server` on the data dir with `extra` in its environment. */
async function startServer(extra: Record<string, string> = {}): Promise<void> {
  server = startKeyhole(
    ["server", "--data-dir", dataDir, "--port", "0", "--log-level", "error"],
    cleanEnv(ctx.dir, extra),
  );
  const [, url] = await server.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  addr = url as string;
  ctx.env.KEYHOLE_ADDR = addr;
}

before(async () => {
  ctx = await e2eContext();
  dataDir = join(ctx.dir, "data");
  const first = await startServerProcess(dataDir, cleanEnv(ctx.dir));
  server = first.process;
  addr = first.url;
  ctx.env.KEYHOLE_ADDR = addr;
  await ctx.ok(["init", "--bootstrap-code", first.bootstrapCode ?? ""]);
  for (const name of SECRETS) {
    const value = randomBytes(24).toString("base64url");
    values.set(name, value);
    await ctx.ok(["secret", "set", name], value);
  }
});
after(async () => {
  await server?.stop("SIGKILL");
  await ctx?.cleanup();
});

/** Waits up to 5 s for `live` to die by SIGKILL on its own, then stops it; true if it did. */
async function exitedByItself(live: LiveProcess): Promise<boolean> {
  const { child } = live;
  if (child.exitCode === null && child.signalCode === null) {
    await Promise.race([once(child, "exit"), delay(5000)]);
  }
  const killed = child.signalCode === "SIGKILL";
  await live.stop("SIGKILL");
  return killed;
}

async function readToken(path: string): Promise<string | null> {
  return readFile(path, "utf8").then(
    (text) => text.trim(),
    () => null,
  );
}

/** True when `token` opens every granted secret to its value; false when it is refused. */
async function works(token: string): Promise<boolean> {
  const vault = new Vault({ addr, token });
  try {
    for (const name of SECRETS) assert.equal(await vault.get(name), values.get(name), name);
    return true;
  } catch (error) {
    // A dead token is refused: 401, or 429 once this test's own refused tokens have used up
    // the source's failure budget (a 429 only ever follows a failed authentication).
    const code = (error as { code?: string }).code ?? "";
    assert.ok(DEAD.includes(code), `a token either works or is refused: ${String(error)}`);
    return false;
  } finally {
    vault.close();
  }
}

/** Of `tokens` (duplicates counted once), exactly one works; returns it. */
async function exactlyOneWorks(tokens: readonly (string | null)[], when: string): Promise<string> {
  const distinct = [...new Set(tokens.filter((t): t is string => t !== null))];
  const working: string[] = [];
  for (const token of distinct) if (await works(token)) working.push(token);
  assert.equal(working.length, 1, `${when}: ${working.length} of ${distinct.length} tokens work`);
  return working[0] as string;
}

/**
 * Creates an agent granted every secret, runs `kill` (a rotate that dies at `step`), checks the
 * tokens left behind, runs the recovery (the same rotate again) and checks again.
 */
async function crashAndRecover(step: Step, kill: (args: string[]) => Promise<void>) {
  const name = `bot${++agents}`;
  const path = join(ctx.dir, `${name}.token`);
  const pendingPath = `${path}.pending`;
  await ctx.ok(["agent", "create", name, "--grant", SECRETS.join(","), "--token-file", path]);
  const oldToken = await readToken(path);
  assert.ok(oldToken !== null && (await works(oldToken)));

  const rotate = ["agent", "rotate", name, "--token-file", path];
  await kill(rotate);
  const inPath = await readToken(path);
  const inPending = await readToken(pendingPath);
  const working = await exactlyOneWorks([oldToken, inPath, inPending], `killed at ${step}`);
  assert.ok(working === inPath || working === inPending, "the working token is on disk");

  const recovery = await ctx.ok(rotate);
  const finished = /finished the interrupted rotate/.test(recovery.stderr);
  assert.equal(finished, COMMITTED.includes(step), `recovery after ${step}: ${recovery.stderr}`);
  const final = await readToken(path);
  assert.equal(await readToken(pendingPath), null, "no PATH.pending is left");
  assert.equal(await exactlyOneWorks([oldToken, inPath, inPending, final], "recovered"), final);
  if (finished) assert.equal(final, working, "a committed rotate is finished, not redone");
  await ctx.ok(["agent", "show", name]);
  await ctx.ok(["audit", "verify"]);
}

for (const step of ROTATE_CRASH_STEPS) {
  test(`owner CLI killed at ${step}: exactly one token works, the same command recovers`, async () => {
    await crashAndRecover(step, async (args) => {
      const run = await ctx.keyhole(args, { env: { KEYHOLE_TEST_CRASH_AT: step } });
      assert.equal(run.signal, "SIGKILL", `killed at ${step}: ${run.stderr}`);
    });
  });
}

for (const step of SERVER_STEPS) {
  test(`server killed at ${step}: exactly one token works, the same command recovers`, async () => {
    await crashAndRecover(step, async (args) => {
      await server.stop("SIGTERM");
      await startServer({ KEYHOLE_TEST: "1", KEYHOLE_TEST_CRASH_AT: step });
      let run: Finished;
      try {
        run = await ctx.keyhole(args);
      } finally {
        // Restarted whatever happened, so one failing case does not take the next ones down.
        const killedByHook = await exitedByItself(server);
        await startServer();
        assert.ok(killedByHook, `the server was killed at ${step}`);
      }
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /the rotate was interrupted; the new token is kept in /);
    });
  });
}
