/**
 * Shared set-up for the broker and `keyhole run` end-to-end tests: a real `keyhole server`, an
 * owner, one secret, one agent whose token sits in a file, a grant limited to the given hosts,
 * and a way to start `keyhole broker` and read the environment lines it prints.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  findNeedles,
  type Needle,
  textEncodingsOf,
  tokenNeedles,
} from "../test-support/needles.js";
import {
  BIN,
  cleanEnv,
  type E2eContext,
  e2eContext,
  type Finished,
  type LiveProcess,
  runProcess,
  type ServerProcess,
  startKeyhole,
  startServerProcess,
} from "./harness.js";
import type { Reply } from "./upstream.test.helper.js";

/** A vault with one secret granted to one agent. */
export interface World {
  readonly ctx: E2eContext;
  readonly server: ServerProcess;
  readonly secret: string;
  readonly agent: string;
  readonly tokenFile: string;
  readonly token: string;
  /** The secret's current value (tests that rotate it update this). */
  value: string;
}

/** Runs an owner command and insists on exit 0. */
export async function owner(world: Pick<World, "ctx">, args: string[], input?: string) {
  const run = await world.ctx.keyhole(args, input === undefined ? {} : { input });
  assert.equal(run.code, 0, `keyhole ${args.join(" ")}: ${run.stderr}`);
  return run;
}

/**
 * Starts a server, claims it, stores `secret` = `value`, creates `agent` with a token file and
 * grants it the secret for `hosts` only.
 */
export async function setUpWorld(options: {
  secret: string;
  value: string;
  agent: string;
  hosts: readonly string[];
}): Promise<World> {
  const ctx = await e2eContext();
  const server = await startServerProcess(join(ctx.dir, "data"), cleanEnv(ctx.dir));
  ctx.env.KEYHOLE_ADDR = server.url;
  const world = { ctx };
  await owner(world, ["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  await owner(world, ["secret", "set", options.secret], options.value);
  const tokenFile = join(ctx.dir, `${options.agent}.token`);
  await owner(world, ["agent", "create", options.agent, "--token-file", tokenFile]);
  await grantHosts({ ctx }, options.agent, options.secret, options.hosts);
  const token = (await readFile(tokenFile, "utf8")).trim();
  return { ctx, server, tokenFile, token, ...options };
}

/** (Re)grants the secret to the agent, limited to `hosts`. */
export async function grantHosts(
  world: Pick<World, "ctx">,
  agent: string,
  secret: string,
  hosts: readonly string[],
): Promise<void> {
  await owner(world, ["grant", "add", agent, secret, "--hosts", hosts.join(",")]);
}

/**
 * The environment of an agent-side process: no owner home, no passphrase; the vault address
 * and the test switch (needed for `--allow-plain-http-upstream`).
 */
export function agentEnv(world: World, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return cleanEnv(join(world.ctx.dir, "agent-home"), {
    KEYHOLE_ADDR: world.server.url,
    KEYHOLE_TEST: "1",
    ...extra,
  });
}

/** A generic route spec that injects `Authorization: Bearer <secret>`. */
export function bearerRoute(name: string, upstream: string, secret: string): string {
  return `${name}=${upstream},secret=${secret},header=Authorization: Bearer {{secret}}`;
}

/** A running `keyhole broker` and what it printed. */
export interface Broker {
  readonly live: LiveProcess;
  /** `http://127.0.0.1:PORT` from the listening line. */
  readonly url: string;
  /** The `NAME=value` lines of its stdout. */
  readonly env: Record<string, string>;
}

/** Parses `NAME=value` lines. */
export function parseEnvLines(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const match of text.matchAll(/^([A-Z_][A-Z0-9_]*)=(.*)$/gm))
    env[match[1] as string] = match[2] as string;
  return env;
}

/**
 * Starts `keyhole broker --token-file F --listen 127.0.0.1:0 --allow-plain-http-upstream
 * --route ...` and waits for its listening line and for a `VAR=` line of every name in `vars`.
 */
export async function startBroker(
  world: World,
  routes: readonly string[],
  vars: readonly string[],
  extraArgs: readonly string[] = [],
): Promise<Broker> {
  const live = startKeyhole(
    [
      "broker",
      "--token-file",
      world.tokenFile,
      "--listen",
      "127.0.0.1:0",
      "--allow-plain-http-upstream",
      ...routes.flatMap((r) => ["--route", r]),
      ...extraArgs,
    ],
    agentEnv(world),
  );
  try {
    const [, url] = await live.waitFor(/broker listening on (http:\/\/127\.0\.0\.1:\d+)/);
    for (const name of vars) await live.waitFor(new RegExp(`^${name}=.*\\n`, "m"));
    return { live, url: url as string, env: parseEnvLines(live.stdout()) };
  } catch (error) {
    await live.stop("SIGKILL");
    throw error;
  }
}

/** Every form of the agent's token, its seed, and the secret's current value. */
export async function secretNeedles(world: World): Promise<Needle[]> {
  return [...(await tokenNeedles("agent", world.token)), ...textEncodingsOf("secret", world.value)];
}

/**
 * Runs `node [nodeArgs] keyhole broker …` with a working set of arguments and `env` added, and
 * asserts that it exits 1 having printed neither a capability nor any form of the token or secret.
 */
export async function refusedBroker(
  world: World,
  route: string,
  nodeArgs: readonly string[],
  env: Record<string, string>,
): Promise<Finished> {
  const args = ["broker", "--token-file", world.tokenFile, "--listen", "127.0.0.1:0"];
  args.push("--allow-plain-http-upstream", "--route", route);
  const run = await runProcess(process.execPath, [...nodeArgs, BIN, ...args], {
    env: agentEnv(world, env),
    timeoutMs: 10_000,
  });
  const output = Buffer.from(run.stdout + run.stderr);
  assert.deepEqual(findNeedles(output, await secretNeedles(world)), [], "a secret was printed");
  assert.ok(!output.includes("khc_"), "a capability was printed: the broker started");
  assert.equal(run.code, 1, `exit ${run.code} ${run.signal}: ${run.stderr}`);
  return run;
}

/** Asserts a broker error reply: status and `{"error":{"code":...}}`. */
export function assertBrokerError(reply: Reply, status: number, code: string): void {
  const text = reply.body.toString("utf8");
  assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status}: ${text}`);
  const body = JSON.parse(text) as { error?: { code?: string } };
  assert.equal(body.error?.code, code, text);
  assert.match(String(reply.headers["content-type"]), /^application\/json/);
}

/** Stops what was started, in reverse order, ignoring what never started. */
export async function stopAll(
  world: World | undefined,
  processes: readonly (LiveProcess | undefined)[],
  closers: readonly ((() => Promise<void>) | undefined)[],
): Promise<void> {
  for (const live of processes) await live?.stop("SIGTERM");
  for (const close of closers) await close?.();
  await world?.server.process.stop("SIGTERM");
  await world?.ctx.cleanup();
}

/** A process seen in /proc. */
export interface ProcInfo {
  readonly pid: number;
  /** argv joined by spaces. */
  readonly cmdline: string;
}

async function procStat(pid: number): Promise<{ state: string; ppid: number } | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, "utf8");
    // `pid (comm) state ppid ...`; comm may hold spaces or parentheses.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

/** The live children of `pid` (Linux only). */
export async function processChildren(pid: number): Promise<ProcInfo[]> {
  const children: ProcInfo[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const info = await procStat(Number(entry));
    if (info?.ppid !== pid || info.state === "Z") continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    children.push({ pid: Number(entry), cmdline: cmdline.replaceAll("\0", " ").trim() });
  }
  return children;
}

/** True once `pid` has exited (gone, or a zombie), polling for up to `ms`. */
export async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await procStat(pid);
    if (info === null || info.state === "Z") return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
