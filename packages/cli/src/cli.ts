/**
 * `keyhole`: the command line. Dispatches to one file per command, turns every failure into one
 * line on stderr (`keyhole: <message>`, never a stack trace) and the exit code: 0 ok, 1 failure,
 * 2 usage error. `bin/keyhole.js` imports this file, which runs `main` when it is the program.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isKeyholeError } from "@keyhole/core";
import { type Command, usageError } from "./args.js";
import { agentCommand } from "./commands/agent.js";
import { auditCommand } from "./commands/audit.js";
import { backupCommand, restoreCommand } from "./commands/backup.js";
import { brokerCommand } from "./commands/broker.js";
import { devCommand } from "./commands/dev.js";
import { grantCommand } from "./commands/grant.js";
import { initCommand } from "./commands/init.js";
import { migrateCommand } from "./commands/migrate.js";
import { runCommand } from "./commands/run.js";
import { secretCommand } from "./commands/secret.js";
import { serverCommand } from "./commands/server.js";
import { sanitize } from "./format.js";
import { type Io, processIo } from "./io.js";

/** The version printed by `keyhole --version`. */
export const VERSION = "0.1.0";

const USAGE = `Usage: keyhole <command> [options]

Keyhole: an end-to-end encrypted credential vault for AI agents.

Commands:
  server    run the server:  [--data-dir DIR] [--host 127.0.0.1] [--port 8250]
            [--tls-cert F --tls-key F]
  init      create the owner and claim a server:  [--addr URL] [--bootstrap-code CODE]
  secret    set NAME | get NAME | list | history NAME | rm NAME
  agent     create NAME [--grant a,b] [--expires 30d] [--token-file PATH]
            | list | show NAME | rotate NAME [--token-file PATH] | revoke NAME
  grant     add AGENT SECRET [--expires 1h] [--hosts h1,h2] | rm AGENT SECRET
            | list [--agent A]
  audit     [--agent A] [--secret S] [--since 1h] [--limit N] [--follow] | verify
  dev       a local server, owner, demo secret and demo agent in one command
  backup    FILE: an online copy of the server's database  [--data-dir DIR]
  restore   FILE: put a backup back (server stopped)  [--data-dir DIR]
  migrate   copy a stopped server's vault to PostgreSQL:  --from sqlite:PATH
            [--to postgres://… | KEYHOLE_DATABASE_URL] [--to-schema NAME]
  run       run an agent that never holds a credential:
            --route openai [--token-file F] -- COMMAND [ARGS...]
  broker    the secretless broker, long-lived:  --token-file F --route openai
            [--listen 127.0.0.1:8201 | --socket PATH]

Every command takes --help; every listing takes --json. Secret values are read from
stdin or a muted prompt, never from the command line.

Environment:
  KEYHOLE_ADDR         server address (default http://127.0.0.1:8250)
  KEYHOLE_HOME         the owner's keys and config (default ~/.keyhole)
  KEYHOLE_PASSPHRASE   the owner key passphrase (else a muted prompt)
  KEYHOLE_TOKEN_FILE   an agent's token file (read by the SDK), KEYHOLE_TOKEN its value
  KEYHOLE_INSECURE_HTTP=1  allow plain http:// to a non-loopback server
  KEYHOLE_DATABASE_URL the PostgreSQL URL (migrate): kept off the command line

Exit codes: 0 ok, 1 failure, 2 usage error.
`;

const COMMANDS: Readonly<Record<string, Command>> = {
  server: serverCommand,
  init: initCommand,
  secret: secretCommand,
  agent: agentCommand,
  grant: grantCommand,
  audit: auditCommand,
  dev: devCommand,
  run: runCommand,
  broker: brokerCommand,
  backup: backupCommand,
  restore: restoreCommand,
  migrate: migrateCommand,
};

/** One line for an error that is not a KeyholeError: its code or name, never its message. */
function internalCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[A-Za-z0-9_]{1,40}$/.test(code)) return code;
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === "string" && /^[A-Za-z]{1,40}$/.test(name) ? name : "unknown";
}

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined) throw usageError("missing command (see keyhole --help)");
    if (name === "--help" || name === "-h" || name === "help") {
      io.stdout.write(USAGE);
      return 0;
    }
    if (name === "--version" || name === "-V") {
      io.stdout.write(`${VERSION}\n`);
      return 0;
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (command === undefined) {
      throw usageError(`unknown command '${sanitize(name).slice(0, 40)}' (see keyhole --help)`);
    }
    return await command.run(rest, io);
  } catch (error) {
    if (isKeyholeError(error)) {
      io.stderr.write(`keyhole: ${sanitize(error.message)}\n`);
      return error.code === "usage" ? 2 : 1;
    }
    io.stderr.write(`keyhole: internal error (${internalCode(error)})\n`);
    if (io.env.KEYHOLE_DEBUG === "1" && error instanceof Error && error.stack !== undefined) {
      io.stderr.write(`${error.stack}\n`);
    }
    return 1;
  }
}

/** Runs as the program: real process, exit code, and a quiet exit on a closed stdout pipe. */
async function main(): Promise<void> {
  process.stdout.on("error", (error: { code?: string }) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  });
  const code = await runCli(process.argv.slice(2), processIo());
  // Exit explicitly: a prompt's terminal or a server socket must not keep the process alive.
  process.exitCode = code;
  process.stdout.write("", () => process.exit(code));
}

function isProgram(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    const real = realpathSync(entry);
    const self = fileURLToPath(import.meta.url);
    const bin = fileURLToPath(new URL("../bin/keyhole.js", import.meta.url));
    return real === self || real === bin;
  } catch {
    return false;
  }
}

if (isProgram()) await main();
