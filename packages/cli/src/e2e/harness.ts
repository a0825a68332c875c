/**
 * The end-to-end harness: runs the real `keyhole` executable (bin/keyhole.js) as child
 * processes, including `keyhole server` on 127.0.0.1 port 0 with a real SQLite file, in a
 * temporary directory removed at the end. The environment is built from scratch, so nothing
 * from the developer's shell (KEYHOLE_*, HOME) leaks into a test.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The committed executable. */
export const BIN = fileURLToPath(new URL("../../bin/keyhole.js", import.meta.url));
/** The repository root (where `@keyhole/sdk` resolves for the `dev` snippet). */
export const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

/** What a finished process left. */
export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of `runProcess`. */
export interface RunOptions {
  readonly env?: Record<string, string | undefined>;
  readonly input?: string | Buffer;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

/** A minimal environment: PATH, a HOME inside the temp dir, and what the test adds. */
export function cleanEnv(
  home: string,
  extra: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home };
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) env[key] = value;
  return env;
}

/** Runs a command to completion, feeding `input` on stdin (closed either way). */
export function runProcess(
  command: string,
  args: string[],
  options: RunOptions & { env: NodeJS.ProcessEnv },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

/** A long-running child whose stderr and stdout are collected as they come. */
export interface LiveProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when `pattern` appears in stdout+stderr (rejects after `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node bin/keyhole.js ...args` in the background. */
export function startKeyhole(args: string[], env: NodeJS.ProcessEnv, cwd = REPO_ROOT): LiveProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const listener of listeners) listener();
  };
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString("utf8");
    changed();
  });
  child.stderr?.on("data", (c: Buffer) => {
    err += c.toString("utf8");
    changed();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      changed();
      resolve({ code, signal });
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pattern, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = (out + err).match(pattern);
          if (match !== null) {
            cleanup();
            resolve(match);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`process exited before ${pattern}: ${err}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}; stderr: ${err}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      }),
    stop: async (signal = "SIGINT") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A `keyhole server` child and what it printed. */
export interface ServerProcess {
  readonly process: LiveProcess;
  readonly url: string;
  readonly bootstrapCode: string | null;
  readonly dataDir: string;
}

/** Starts `keyhole server --data-dir DIR --port 0` and reads its listening line and code. */
export async function startServerProcess(
  dataDir: string,
  env: NodeJS.ProcessEnv,
  extraArgs: readonly string[] = [],
): Promise<ServerProcess> {
  const live = startKeyhole(
    ["server", "--data-dir", dataDir, "--port", "0", "--log-level", "error", ...extraArgs],
    env,
  );
  const [, url] = await live.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  // The code line follows the listening line on a fresh server; give it a moment to arrive.
  const code = await live
    .waitFor(/bootstrap code: (\S+)/, 2000)
    .then((m) => m[1] ?? null)
    .catch(() => null);
  return { process: live, url: url as string, bootstrapCode: code, dataDir };
}

/** A temporary directory for one test file, and a CLI runner with a fixed base environment. */
export interface E2eContext {
  readonly dir: string;
  /** The owner's environment (KEYHOLE_HOME, KEYHOLE_ADDR, KEYHOLE_PASSPHRASE, fast Argon2). */
  env: Record<string, string | undefined>;
  keyhole(args: string[], options?: RunOptions): Promise<Finished>;
  /** `keyhole ARGS` with `input` on stdin, asserting exit 0 (stderr in the failure message). */
  ok(args: string[], input?: string): Promise<Finished>;
  cleanup(): Promise<void>;
}

/** Makes a temp dir and a `keyhole` runner whose env starts from `cleanEnv`. */
export async function e2eContext(): Promise<E2eContext> {
  const dir = await mkdtemp(join(tmpdir(), "keyhole-e2e-"));
  const context: E2eContext = {
    dir,
    env: {
      KEYHOLE_HOME: join(dir, "owner"),
      KEYHOLE_PASSPHRASE: "e2e passphrase, long enough",
      KEYHOLE_TEST: "1",
      KEYHOLE_TEST_ARGON2_FAST: "1",
    },
    keyhole: (args, options = {}) =>
      runProcess(process.execPath, [BIN, ...args], {
        ...options,
        env: cleanEnv(dir, { ...context.env, ...options.env }),
      }),
    ok: async (args, input) => {
      const run = await context.keyhole(args, input === undefined ? {} : { input });
      assert.equal(run.code, 0, `keyhole ${args.join(" ")}: ${run.stderr}`);
      return run;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  return context;
}

/** A test file's context with its own `keyhole server` running (`e2eWithServer`). */
export interface E2eWithServer {
  readonly ctx: E2eContext;
  readonly server: ServerProcess;
}

/**
 * A context and a fresh `keyhole server` in its directory, the owner's `KEYHOLE_ADDR` pointing
 * at it; with `init`, the owner has run `keyhole init` with the bootstrap code.
 */
export async function e2eWithServer(
  options: { readonly extraArgs?: readonly string[]; readonly init?: boolean } = {},
): Promise<E2eWithServer> {
  const ctx = await e2eContext();
  const server = await startServerProcess(
    join(ctx.dir, "data"),
    cleanEnv(ctx.dir),
    options.extraArgs,
  );
  ctx.env.KEYHOLE_ADDR = server.url;
  if (options.init === true) {
    await ctx.ok(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
  }
  return { ctx, server };
}

/** Stops the server and removes the directory; either may be missing after a failed start. */
export async function stopE2e(ctx?: E2eContext, server?: ServerProcess): Promise<void> {
  await server?.process.stop("SIGTERM");
  await ctx?.cleanup();
}
