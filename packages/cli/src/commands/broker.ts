/**
 * `keyhole broker`: the secretless broker (DESIGN.md §6.2). It holds the agent token, fetches a
 * secret from the vault at the moment of each call, puts it on the outbound request to a host the
 * owner allowed, and streams the answer back. Agents get a base URL and a capability, never the
 * token or the secret. `keyhole run` starts one of these per run with `--parent-pipe`.
 */
import { createWriteStream } from "node:fs";
import { resolve } from "node:path";
import { KeyholeError } from "@keyhole/core";
import { Vault } from "@keyhole/sdk";
import { type Command, parseOrHelp, stringOption, usageError } from "../args.js";
import { formatAgentEnv, writeAgentEnvFile } from "../broker/agent-env-file.js";
import { CapabilityBook } from "../broker/capability.js";
import { assertNoCodeInjection } from "../broker/guard.js";
import {
  cacheTtl,
  collectRoutes,
  plainHttpAllowed,
  ROUTE_HELP,
  ROUTE_OPTIONS,
} from "../broker/route-options.js";
import { type Route, routeEnv } from "../broker/routes.js";
import { type BrokerListen, parseListen, startBrokerService } from "../broker/serve.js";
import { createVaultSecretSource } from "../broker/vault-source.js";
import { type Io, note } from "../io.js";

const USAGE = `Usage: keyhole broker [--token-file FILE] [--addr URL]
                      [--listen 127.0.0.1:8201 | --socket PATH]
                      [--route SPEC]... [--routes FILE] [--cache-ttl DUR]
                      [--agent-env FILE] [--log FILE]

Run the secretless broker until Ctrl-C. It holds the agent token (read from a file, never
from the command line), fetches each secret from the vault when a call needs it, and sends
it only to the hosts the owner's grant allows (keyhole grant add ... --hosts). Agents call
http://127.0.0.1:PORT/<route>/... with a capability instead of a key: the lines it prints
(NAME=value) are the environment an agent needs.

Options:
  --token-file FILE  the agent token file (default $KEYHOLE_TOKEN_FILE)
  --addr URL         the Keyhole server (default $KEYHOLE_ADDR, http://127.0.0.1:8250)
  --listen ADDR      loopback address and port to listen on (default 127.0.0.1:8201;
                     port 0 picks a free one)
  --socket PATH      listen on a Unix socket (mode 0600) instead
${ROUTE_HELP}  --agent-env FILE   write the agents' environment there (mode 0600), not to stdout
  --log FILE         append the call log there (default stderr): route, method, host,
                     path, status, duration; never headers or bodies
  --parent-pipe      used by keyhole run: report on stdout as JSON, stop when stdin closes
  -h, --help         show this help

It refuses to start when NODE_OPTIONS or node's own arguments could load code, when
LD_PRELOAD-style variables are set, or when TLS verification is turned off.
`;

/** The agents' environment: every route's variables with the broker URL and its capability. */
function agentEnvironment(routes: readonly Route[], url: string, book: CapabilityBook) {
  const env: Record<string, string> = {};
  for (const route of routes) Object.assign(env, routeEnv(route, url, book.issue(route.name)));
  return env;
}

function openLog(io: Io, file: string | undefined): (line: string) => void {
  if (file === undefined) return (line) => note(io, `keyhole: ${line}`);
  const stream = createWriteStream(resolve(io.cwd, file), { flags: "a", mode: 0o600 });
  stream.on("error", () => note(io, "cannot write the call log file; logging to stderr"));
  return (line) => {
    if (stream.writable) stream.write(`${new Date().toISOString()} ${line}\n`);
    else note(io, `keyhole: ${line}`);
  };
}

function listenOption(
  io: Io,
  listen: string | undefined,
  socket: string | undefined,
): BrokerListen {
  if (listen !== undefined && socket !== undefined)
    throw usageError("give --listen or --socket, not both");
  if (socket !== undefined) return { kind: "socket", path: resolve(io.cwd, socket) };
  return parseListen(listen ?? "127.0.0.1:8201");
}

/** Resolves when stdin ends: the parent `keyhole run` is gone or done. */
function stdinClosed(io: Io): Promise<string> {
  return new Promise((done) => {
    io.stdin.on("end", () => done("parent closed"));
    io.stdin.on("error", () => done("parent closed"));
    io.stdin.resume();
  });
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, USAGE, argv, {
    ...ROUTE_OPTIONS,
    "token-file": { type: "string" },
    addr: { type: "string" },
    listen: { type: "string" },
    socket: { type: "string" },
    "agent-env": { type: "string" },
    log: { type: "string" },
    "parent-pipe": { type: "boolean" },
  });
  if (args === null) return 0;
  // Before anything else, and before the token is read: injected code must find nothing here.
  assertNoCodeInjection();
  if (io.env.KEYHOLE_TOKEN !== undefined)
    throw usageError(
      "the broker reads its token from a file: unset KEYHOLE_TOKEN, use --token-file",
    );
  const tokenFile = stringOption(args, "token-file") ?? io.env.KEYHOLE_TOKEN_FILE;
  if (tokenFile === undefined) throw usageError("missing --token-file (or KEYHOLE_TOKEN_FILE)");
  const routes = collectRoutes(io, args);
  const listen = listenOption(io, stringOption(args, "listen"), stringOption(args, "socket"));
  const parentPipe = args.values["parent-pipe"] === true;
  const addr = stringOption(args, "addr") ?? io.env.KEYHOLE_ADDR;
  const vault = new Vault({
    tokenFile: resolve(io.cwd, tokenFile),
    ...(addr === undefined ? {} : { addr }),
    ...(io.env.KEYHOLE_INSECURE_HTTP === "1" ? { allowInsecureHttp: true } : {}),
  });

  // Fail at start, not on the agent's first call, when a route's secret is not granted.
  const granted = new Set((await vault.list()).map((s) => s.name));
  for (const route of routes)
    if (!granted.has(route.secret))
      throw new KeyholeError(
        "config_error",
        `route ${route.name}: secret ${route.secret} is not granted to this agent`,
      );

  const book = new CapabilityBook();
  const source = createVaultSecretSource(vault, cacheTtl(args));
  const service = await startBrokerService({
    routes,
    capabilities: book,
    source,
    listen,
    log: openLog(io, stringOption(args, "log")),
    allowPlainHttpLoopbackUpstream: plainHttpAllowed(io, args),
  });
  const env = agentEnvironment(routes, service.url, book);
  const envFile = stringOption(args, "agent-env");
  if (parentPipe) io.stdout.write(`${JSON.stringify({ url: service.url, env })}\n`);
  else if (envFile !== undefined) writeAgentEnvFile(resolve(io.cwd, envFile), env);
  else io.stdout.write(formatAgentEnv(env));
  if (!parentPipe) {
    const where = listen.kind === "socket" ? ` (socket ${listen.path})` : "";
    const names = routes.map((r) => r.name).join(", ");
    note(io, `keyhole: broker listening on ${service.url}${where} (routes: ${names})`);
  }

  const reason = await Promise.race([io.waitForSignal(), ...(parentPipe ? [stdinClosed(io)] : [])]);
  if (!parentPipe) note(io, `keyhole: ${reason}: broker stopping`);
  await service.close();
  vault.close();
  return 0;
}

/** `keyhole broker`. */
export const brokerCommand: Command = { usage: USAGE, run };
