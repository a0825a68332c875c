/**
 * `keyhole run`'s broker: a separate `keyhole broker --parent-pipe` process. It is started with
 * an environment built from scratch (so the parent's NODE_OPTIONS or LD_PRELOAD never reach the
 * process that holds the token) and without node flags, in its own process group (so Ctrl-C at
 * the terminal reaches the agent, not the broker). It reports its URL and the agents' variables as
 * one JSON line on a pipe, and it stops when that pipe's other end, its stdin, closes: when the run
 * ends, or when `keyhole run` dies.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { KeyholeError } from "@keyhole/core";

const BIN = fileURLToPath(new URL("../../bin/keyhole.js", import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

/** A started broker and the variables the agent needs to use it. */
export interface BrokerProcess {
  readonly url: string;
  readonly env: Readonly<Record<string, string>>;
  readonly child: ChildProcess;
  /** Closes the pipe and waits for the broker to exit (killing it after 5 s). */
  stop(): Promise<void>;
}

// Only what the broker itself reads; never PATH-style or loader variables from the parent.
const PASSED_TO_BROKER = ["KEYHOLE_TEST", "KEYHOLE_INSECURE_HTTP", "TZ"];

function parseReady(line: string): { url: string; env: Record<string, string> } {
  const value = JSON.parse(line) as { url?: unknown; env?: unknown };
  if (typeof value.url !== "string" || typeof value.env !== "object" || value.env === null)
    throw new Error("bad ready line");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(value.env)) if (typeof v === "string") env[k] = v;
  return { url: value.url, env };
}

/** Starts the broker with `args` (after `broker --parent-pipe`) and waits until it listens. */
export function startBrokerProcess(
  args: readonly string[],
  parentEnv: Readonly<Record<string, string | undefined>>,
  cwd: string,
): Promise<BrokerProcess> {
  const env: Record<string, string> = {};
  for (const name of PASSED_TO_BROKER) {
    const value = parentEnv[name];
    if (value !== undefined) env[name] = value;
  }
  const child = spawn(process.execPath, [BIN, "broker", "--parent-pipe", ...args], {
    cwd,
    env,
    stdio: ["pipe", "pipe", "inherit"],
    detached: true,
  });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const stop = async (): Promise<void> => {
    child.stdin?.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let buffered = "";
    let settled = false;
    const fail = (message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new KeyholeError("config_error", message));
    };
    const timer = setTimeout(() => fail("the broker did not start in time"), READY_TIMEOUT_MS);
    child.stdin?.on("error", () => undefined);
    child.once("error", () => fail("cannot start the broker process"));
    // Its own error line is already on stderr.
    child.once("exit", () => fail("the broker did not start"));
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const newline = buffered.indexOf("\n");
      if (newline === -1 || settled) return;
      child.stdout?.off("data", onData);
      child.stdout?.resume();
      let ready: ReturnType<typeof parseReady>;
      try {
        ready = parseReady(buffered.slice(0, newline));
      } catch {
        fail("the broker's ready line is malformed");
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve({ ...ready, child, stop });
    };
    child.stdout?.on("data", onData);
  });
}
