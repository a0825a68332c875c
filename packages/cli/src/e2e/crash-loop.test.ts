// Crash safety (issue 4, "Reliability"): owner writes (`secret set`, `grant add`/`grant rm`)
// and agent reads (SDK `Vault`, each one an audit entry) run against a real `keyhole server`
// process, which is SIGKILLed at a random moment many times and restarted on the same data
// dir. After every restart: each acknowledged write (CLI exit 0, SDK promise resolved) is
// there, versions are gap-free, the audit chain verifies, and a write that was cut off is
// either absent or complete (a version that opens with its owner signature, a grant with a
// working wrap). durability.test.ts in the server covers the single kill -9 of one write.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Vault } from "@keyhole/sdk";
import {
  cleanEnv,
  type E2eContext,
  e2eContext,
  type Finished,
  type LiveProcess,
  startKeyhole,
  startServerProcess,
} from "./harness.js";

/** 8 by default (under a minute on two cores); `KEYHOLE_CRASH_KILLS=50` for a longer soak. */
const KILLS = Number(process.env.KEYHOLE_CRASH_KILLS ?? "8");
/** The server dies between these many ms after the writers start. */
const KILL_AFTER_MS: readonly [number, number] = [800, 3000];
const SECRETS = ["alpha", "beta"] as const;
/** `flip` is granted and ungranted `beta` over and over; `reader` reads `alpha`. */
const FLIP_SECRET = "beta";
const READ_SECRET = "alpha";
/** Each attempt's value has its own length, so a version's `size` names the attempt. */
const BASE_LENGTH = 16;
/** The agent reads at a steady pace rather than starving the two cores of CI. */
const READ_PAUSE_MS = 50;
const UNREACHABLE = /^keyhole: could not reach the Keyhole server at /;
const CONFLICT = /^keyhole: the (secret|resource) changed[^\n]*\n$/;
/** Either way round: the server lists a grantee this machine has no pin for, or the reverse. */
const PIN_MISMATCH =
  /as a grantee of '[a-z]+', but the owner state on this machine has no such grant|the server no longer lists agent '[a-z]+''s grant of/;

interface Attempt {
  readonly value: string;
  readonly acked: boolean;
}

let ctx: E2eContext;
let dataDir: string;
let server: LiveProcess | undefined;
let addr = "";
const processes = new Set<LiveProcess>();

/** Starts `keyhole server` on the data dir and waits only for its listening line. */
async function startServer(): Promise<void> {
  const live = startKeyhole(
    ["server", "--data-dir", dataDir, "--port", "0", "--log-level", "error"],
    cleanEnv(ctx.dir),
  );
  processes.add(live);
  const [, url] = await live.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  server = live;
  addr = url as string;
  ctx.env.KEYHOLE_ADDR = addr;
}

before(async () => {
  ctx = await e2eContext();
  dataDir = join(ctx.dir, "data");
  const first = await startServerProcess(dataDir, cleanEnv(ctx.dir));
  processes.add(first.process);
  server = first.process;
  addr = first.url;
  ctx.env.KEYHOLE_ADDR = addr;
  await ok(["init", "--bootstrap-code", first.bootstrapCode ?? ""]);
});
after(async () => {
  for (const live of processes) await live.stop("SIGKILL");
  await ctx?.cleanup();
});

function keyhole(args: string[], input?: string): Promise<Finished> {
  return ctx.keyhole(args, { timeoutMs: 20_000, ...(input === undefined ? {} : { input }) });
}

async function ok(args: string[], input?: string): Promise<Finished> {
  const run = await keyhole(args, input);
  assert.equal(run.code, 0, `keyhole ${args.join(" ")}: ${run.stderr}`);
  return run;
}

function randomValue(length: number): string {
  return randomBytes(length).toString("base64url").slice(0, length);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function sdkRead(tokenFile: string, name: string): Promise<string> {
  const vault = new Vault({ addr, tokenFile });
  try {
    return await vault.get(name);
  } finally {
    vault.close();
  }
}

async function sdkError(tokenFile: string, name: string): Promise<string> {
  try {
    await sdkRead(tokenFile, name);
    return "no error";
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

test(`${KILLS} random kill -9s during writes lose no acknowledged write`, async (t) => {
  const started = Date.now();
  const attempts = new Map<string, Attempt[]>(SECRETS.map((s) => [s, []]));
  let nextLength = BASE_LENGTH;
  const readerToken = join(ctx.dir, "reader.token");
  const flipToken = join(ctx.dir, "flip.token");
  for (const name of SECRETS) {
    const value = randomValue(nextLength++);
    await ok(["secret", "set", name], value);
    attempts.get(name)?.push({ value, acked: true });
  }
  await ok(["agent", "create", "reader", "--grant", READ_SECRET, "--token-file", readerToken]);
  await ok(["agent", "create", "flip", "--token-file", flipToken]);
  const firstHistory = await versionsOf(SECRETS[0]);
  const overhead = (firstHistory[0]?.size ?? 0) - BASE_LENGTH;

  let granted = false; // flip's grant of FLIP_SECRET as last acknowledged
  let ackedReads = 0;
  let unackedWrites = 0;
  let unackedGrantOps = 0;
  let unackedReads = 0;
  const restartMs: number[] = [];
  const unexpected: string[] = [];
  let refusedByPins = 0;

  for (let kill = 1; kill <= KILLS; kill++) {
    let killed = false;
    const cut: { grant: boolean | null } = { grant: null };
    const writer = async (name: string) => {
      while (!killed) {
        const value = randomValue(nextLength++);
        const run = await keyhole(["secret", "set", name], value);
        attempts.get(name)?.push({ value, acked: run.code === 0 });
        if (run.code !== 0) {
          unackedWrites++;
          if (UNREACHABLE.test(run.stderr)) continue;
          // Fail-closed, not lost: after a cut-off `grant add`/`grant rm` (or in the moment
          // between a grant op's request and its pin) the server's grantee list and this
          // machine's pins differ until the next grant op mends them (docs/reliability.md).
          if (name === FLIP_SECRET && PIN_MISMATCH.test(run.stderr)) refusedByPins++;
          else unexpected.push(`secret set ${name}: ${run.stderr.trim()}`);
        }
      }
    };
    const toggler = async () => {
      while (!killed) {
        const want = !granted;
        cut.grant = want;
        const run = await keyhole(
          want ? ["grant", "add", "flip", FLIP_SECRET] : ["grant", "rm", "flip", FLIP_SECRET],
        );
        if (run.code === 0) {
          granted = want;
          cut.grant = null;
        } else {
          unackedGrantOps++;
          // A grant op racing a new version may also run out of retries: a clean 409.
          if (!UNREACHABLE.test(run.stderr) && !CONFLICT.test(run.stderr)) {
            unexpected.push(`grant: ${run.stderr.trim()}`);
          }
        }
      }
    };
    const reader = async () => {
      while (!killed) {
        try {
          await sdkRead(readerToken, READ_SECRET);
          ackedReads++;
        } catch {
          unackedReads++;
        }
        await sleep(READ_PAUSE_MS);
      }
    };
    const load = Promise.all([...SECRETS.map(writer), toggler(), reader()]);
    const [low, high] = KILL_AFTER_MS;
    await sleep(low + Math.random() * (high - low));
    killed = true;
    const dying = server as LiveProcess;
    const exit = await dying.stop("SIGKILL");
    processes.delete(dying);
    assert.equal(exit.signal, "SIGKILL");
    await load;
    assert.deepEqual(unexpected, [], `kill ${kill}: only the kill may make a command fail`);
    const t0 = Date.now();
    await startServer();
    restartMs.push(Date.now() - t0);

    // 1. Secrets: versions 1..k without gaps; every acknowledged attempt is exactly one
    //    version, an unacknowledged one at most one; the newest opens (owner_sig checked by
    //    `secret get`) to its attempt's value. The views are read in parallel.
    const current = new Map<string, string>();
    const checkSecret = async (name: string) => {
      const [versions, got] = await Promise.all([versionsOf(name), ok(["secret", "get", name])]);
      assert.deepEqual(
        versions.map((v) => v.version),
        Array.from({ length: versions.length }, (_, i) => i + 1),
        `kill ${kill}: ${name} versions are gap-free`,
      );
      const tried = attempts.get(name) ?? [];
      const bySize = new Map(tried.map((a) => [a.value.length + overhead, a]));
      const seen = new Set<number>();
      for (const v of versions) {
        assert.ok(bySize.has(v.size), `kill ${kill}: ${name} v${v.version} matches an attempt`);
        assert.ok(!seen.has(v.size), `kill ${kill}: ${name} v${v.version} is not a duplicate`);
        seen.add(v.size);
      }
      for (const a of tried) {
        if (a.acked) {
          assert.ok(
            seen.has(a.value.length + overhead),
            `kill ${kill}: an acknowledged write of ${name} is missing`,
          );
        }
      }
      const newest = versions[versions.length - 1];
      assert.equal(got.stdout, bySize.get(newest?.size ?? -1)?.value, `kill ${kill}: ${name}`);
      current.set(name, got.stdout);
    };
    const [, grantRun, auditRun] = await Promise.all([
      Promise.all(SECRETS.map(checkSecret)),
      ok(["grant", "list", "--agent", "flip", "--json"]),
      ok(["audit", "--agent", "reader", "--limit", "100000", "--json"]),
    ]);

    // 2. Every read the SDK got an answer for was logged before it was answered.
    const reads = JSON.parse(auditRun.stdout) as { action: string; result: string }[];
    const logged = reads.filter((e) => e.action === "secret.read" && e.result === "ok").length;
    assert.ok(
      logged >= ackedReads,
      `kill ${kill}: ${logged} reads logged < ${ackedReads} answered`,
    );

    // 3. The grant: the acknowledged state, or the state the cut-off operation aimed at; a
    //    listed grant has a wrap of the current version, an absent one gives the agent nothing.
    const grants = JSON.parse(grantRun.stdout) as { secret_name: string }[];
    const listed = grants.some((g) => g.secret_name === FLIP_SECRET);
    const allowed: boolean[] = cut.grant === null ? [granted] : [granted, cut.grant];
    assert.ok(allowed.includes(listed), `kill ${kill}: grant listed=${listed}, allowed ${allowed}`);
    granted = listed;
    if (listed) {
      assert.equal(await sdkRead(flipToken, FLIP_SECRET), current.get(FLIP_SECRET));
    } else {
      assert.equal(await sdkError(flipToken, FLIP_SECRET), "not_found");
    }
    assert.equal(await sdkRead(readerToken, READ_SECRET), current.get(READ_SECRET));
    ackedReads++;

    // 4. The audit chain verifies, and has neither shrunk nor changed since the last pin.
    await ok(["audit", "verify"]);
  }

  const ackedWrites = [...attempts.values()].flat().filter((a) => a.acked).length;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const summary =
    `${KILLS} kills in ${seconds}s: ${ackedWrites} acknowledged secret writes, ` +
    `${unackedWrites} not acknowledged (${refusedByPins} of them refused by the grant pins); ` +
    `${unackedGrantOps} grant ops cut off; ` +
    `${ackedReads} agent reads answered, ${unackedReads} cut off; ` +
    `restart to listening ${Math.min(...restartMs)}-${Math.max(...restartMs)}ms; nothing lost`;
  t.diagnostic(summary);
  process.stderr.write(`# crash-loop: ${summary}\n`);
});

async function versionsOf(name: string): Promise<{ version: number; size: number }[]> {
  return JSON.parse((await ok(["secret", "history", name, "--json"])).stdout) as {
    version: number;
    size: number;
  }[];
}
