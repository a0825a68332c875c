/**
 * `keyhole run --route openai -- python agent.py`: the agent runs with a base URL and a per-run
 * capability instead of a key. A separate broker process holds the token and the secrets; the
 * child gets neither, nor the token file's path. The broker stops when the run ends, which kills
 * the capability. Exit codes and signals pass through, as with `env` or `exec`.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { resolve } from "node:path";
import {
  type Command,
  flag,
  type ParsedArgs,
  parseOrHelp,
  stringOption,
  usageError,
} from "../args.js";
import { readAgentEnvFile } from "../broker/agent-env-file.js";
import { startBrokerProcess } from "../broker/broker-process.js";
import { buildChildEnv, exposedCredentials } from "../broker/child-env.js";
import { injectionProblems, readInitialEnviron } from "../broker/guard.js";
import { collectRoutes, ROUTE_HELP, ROUTE_OPTIONS, routeSpecs } from "../broker/route-options.js";
import { type Io, note } from "../io.js";

const USAGE = `Usage: keyhole run [--route SPEC]... [--routes FILE] [--token-file FILE] [--addr URL]
                   [--inherit-env] [--env NAME[=VALUE]]... [--cache-ttl DUR] [--log FILE]
                   -- COMMAND [ARGS...]
       keyhole run --attach FILE [--inherit-env] [--env NAME[=VALUE]]... -- COMMAND [ARGS...]

Run COMMAND as an agent that never holds a credential. A broker process (keyhole broker)
holds the agent token; COMMAND gets, per route, a base URL pointing at the broker and a
capability valid only for this run (e.g. OPENAI_BASE_URL and OPENAI_API_KEY for
--route openai), so an unchanged OpenAI, Anthropic or GitHub client works.

The child's environment is built from scratch: PATH, HOME, USER, LOGNAME, SHELL, TERM,
COLORTERM, LANG, LANGUAGE, LC_*, TZ, TMPDIR, what --env adds and the routes' variables.

Options:
${ROUTE_HELP}  --token-file FILE  the agent token file, read by the broker only
                     (default $KEYHOLE_TOKEN_FILE)
  --addr URL         the Keyhole server (default $KEYHOLE_ADDR, http://127.0.0.1:8250)
  --inherit-env      pass the whole environment instead, minus every KEYHOLE_* variable,
                     every variable a route sets and the one named after each routed
                     secret (openai-api-key -> OPENAI_API_KEY)
  --env NAME[=VAL]   pass NAME from this environment, or set it to VAL; repeatable
  --log FILE         append the broker's call log there (default stderr)
  --attach FILE      use a running broker instead of starting one: FILE is what
                     keyhole broker --agent-env wrote (its capabilities last as long
                     as that broker, not this run; that broker may run as another user)
  -h, --help         show this help

Exit status: COMMAND's; if COMMAND dies of a signal, keyhole run dies of the same one.
127 when COMMAND is not found, 126 when it cannot be run, 1 when the broker cannot start.
SIGTERM and SIGHUP are passed on to COMMAND (and SIGINT when there is no terminal: at a
terminal, Ctrl-C already reaches COMMAND).
`;

const FORWARDED: readonly NodeJS.Signals[] = ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"];

/** The broker's arguments: the same routes, token file, address, cache and log. */
function brokerArgs(io: Io, argv: ParsedArgs): string[] {
  const out = ["--listen", "127.0.0.1:0"];
  const tokenFile = stringOption(argv, "token-file") ?? io.env.KEYHOLE_TOKEN_FILE;
  if (tokenFile === undefined) throw usageError("missing --token-file (or KEYHOLE_TOKEN_FILE)");
  out.push("--token-file", resolve(io.cwd, tokenFile));
  const addr = stringOption(argv, "addr") ?? io.env.KEYHOLE_ADDR;
  if (addr !== undefined) out.push("--addr", addr);
  for (const spec of routeSpecs(argv)) out.push("--route", spec);
  for (const name of ["routes", "log"] as const) {
    const value = stringOption(argv, name);
    if (value !== undefined) out.push(`--${name}`, resolve(io.cwd, value));
  }
  const ttl = stringOption(argv, "cache-ttl");
  if (ttl !== undefined) out.push("--cache-ttl", ttl);
  if (flag(argv, "allow-plain-http-upstream")) out.push("--allow-plain-http-upstream");
  return out;
}

/**
 * `keyhole run` holds no token, so code loaded into it finds only the token file's path; the
 * broker, which holds the token, starts without it. The user should still hear about it: the same
 * hook runs in the agent, and in every other Node program of this shell.
 */
function warnIfInjected(io: Io): void {
  const problems = injectionProblems([readInitialEnviron() ?? {}, io.env], process.execArgv);
  if (problems.length > 0)
    note(
      io,
      `keyhole: warning: ${problems.join("; ")}; it runs in keyhole run and your command, ` +
        "not in the broker (started without it)",
    );
}

/** How the child ended. */
interface ChildResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly spawnError?: string;
}

/** Waits for the child; passes signals on meanwhile. */
function waitForChild(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  io: Io,
): Promise<ChildResult> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: io.cwd, env, stdio: "inherit" });
    const atTerminal = process.stdin.isTTY === true;
    const forward = (signal: NodeJS.Signals) => {
      // At a terminal, Ctrl-C and Ctrl-\ go to the whole foreground group, the child included.
      if (atTerminal && (signal === "SIGINT" || signal === "SIGQUIT")) return;
      child.kill(signal);
    };
    for (const signal of FORWARDED) process.on(signal, forward);
    const finish = (result: ChildResult) => {
      for (const signal of FORWARDED) process.off(signal, forward);
      done(result);
    };
    child.once("error", (error: NodeJS.ErrnoException) =>
      finish({ code: null, signal: null, spawnError: error.code ?? "unknown" }),
    );
    child.once("exit", (code, signal) => finish({ code, signal }));
  });
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const dashes = argv.indexOf("--");
  const own = dashes === -1 ? argv : argv.slice(0, dashes);
  const args = parseOrHelp(io, USAGE, own, {
    ...ROUTE_OPTIONS,
    "token-file": { type: "string" },
    addr: { type: "string" },
    "inherit-env": { type: "boolean" },
    env: { type: "string", multiple: true },
    log: { type: "string" },
    attach: { type: "string" },
  });
  if (args === null) return 0;
  const [command, ...commandArgs] = dashes === -1 ? [] : argv.slice(dashes + 1);
  if (command === undefined) throw usageError("missing the command to run, after --");
  const attach = stringOption(args, "attach");
  if (attach !== undefined) {
    for (const name of ["route", "routes", "token-file", "addr", "cache-ttl", "log"])
      if (args.values[name] !== undefined)
        throw usageError(`--attach uses a running broker: --${name} belongs to that broker`);
  }
  // Checked before any process starts, so a bad route or --env fails at once.
  const routes = attach === undefined ? collectRoutes(io, args) : [];
  const attached = attach === undefined ? {} : readAgentEnvFile(resolve(io.cwd, attach));
  const exposed = exposedCredentials(io.env, routes, attached);
  if (exposed.length > 0)
    throw usageError(
      `unset ${exposed.join(", ")} first: the command could read ${exposed.length === 1 ? "it" : "them"} ` +
        "in keyhole run's /proc/<pid>/environ (the broker brings the key; it reads --token-file)",
    );
  const extra = (args.values as Record<string, unknown>).env;
  const envArgs = Array.isArray(extra)
    ? extra.filter((e): e is string => typeof e === "string")
    : [];
  const childEnv = (routeVars: Record<string, string>) =>
    buildChildEnv({
      parent: io.env,
      inherit: flag(args, "inherit-env"),
      extra: envArgs,
      routes,
      routeVars,
    });
  childEnv({});
  warnIfInjected(io);

  let result: ChildResult;
  if (attach !== undefined) {
    result = await waitForChild(command, commandArgs, childEnv(attached), io);
  } else {
    const broker = await startBrokerProcess(brokerArgs(io, args), io.env, io.cwd);
    const onBrokerExit = (code: number | null) =>
      note(
        io,
        `keyhole: the broker stopped (exit ${code ?? "signal"}); calls through it will fail`,
      );
    try {
      broker.child.once("exit", onBrokerExit);
      result = await waitForChild(command, commandArgs, childEnv(broker.env), io);
    } finally {
      broker.child.off("exit", onBrokerExit);
      await broker.stop();
    }
  }
  return exitStatus(result, command, io);
}

/** The child's outcome as our own: its code, its signal (re-raised), 127/126 if it never ran. */
function exitStatus(result: ChildResult, command: string, io: Io): number {
  if (result.spawnError !== undefined) {
    const notFound = result.spawnError === "ENOENT";
    const what = notFound ? "command not found" : "cannot run the command";
    note(io, `keyhole: ${what}: ${command.slice(0, 80)}`);
    return notFound ? 127 : 126;
  }
  if (result.signal !== null) {
    // Die of the same signal, so our parent sees what it would have seen without us.
    process.kill(process.pid, result.signal);
    return 128 + (constants.signals[result.signal] ?? 0);
  }
  return result.code ?? 1;
}

/** `keyhole run`. */
export const runCommand: Command = { usage: USAGE, run };
