#!/usr/bin/env node
/**
 * `node dist/main.js --data-dir DIR [--host H] [--port P] [--tls-cert F --tls-key F]
 * [--log-level L] [--allow-missing-revocations] [--database-url URL --pepper-file F
 * --audit-key-file F]`: runs the server in the foreground. Prints where it listens and, while
 * the vault has no owner, the bootstrap code, to stderr; stops cleanly on SIGTERM/SIGINT.
 *
 * The database URL is read from KEYHOLE_DATABASE_URL as well as `--database-url`: it may hold a
 * password, and any local user can read a process's argv (`ps`), not its environment.
 */
import { parseArgs } from "node:util";
import { isKeyholeError } from "@keyhole/core";
import type { LogLevel } from "./log.js";
import { type ServerOptions, startServer } from "./server.js";
import { startupStorageError } from "./store/storage-errors.js";

const USAGE = `usage: keyhole-server --data-dir DIR [--host 127.0.0.1] [--port 8250]
                      [--tls-cert FILE --tls-key FILE] [--log-level silent|error|info|debug]
                      [--allow-missing-revocations] [--trusted-proxy CIDR,...]
                      [--health-port P]
                      [--database-url URL] [--database-schema NAME]
                      [--pepper-file FILE] [--audit-key-file FILE]

Shared PostgreSQL database (several servers, each with its own --data-dir):
  --database-url URL     postgres://user:password@host:port/database (or postgresql://);
                         prefer the environment variable KEYHOLE_DATABASE_URL: other users
                         can see a command line (ps), and the URL may hold the password.
                         Add ?sslmode=verify-full for a database across a network
  --database-schema NAME the existing schema for Keyhole's tables (lower-case letters,
                         digits, _); default: the database user's, normally public
  --pepper-file FILE     the token pepper: 32 random bytes, mode 0600, the same file on every
                         server (or KEYHOLE_PEPPER_FILE). Required with --database-url
  --audit-key-file FILE  the audit checkpoint key: 32 random bytes, mode 0600, the same on
                         every server (or KEYHOLE_AUDIT_KEY_FILE). Required with --database-url
                         Make each once with: (umask 077; head -c 32 /dev/urandom > FILE)
Without --database-url the server keeps SQLite, pepper and audit key in --data-dir, and
refuses --pepper-file and --audit-key-file.
`;

const LEVELS: readonly string[] = ["silent", "error", "info", "debug"];

function usage(message: string): never {
  process.stderr.write(`keyhole server: ${message}\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  let tokens: ReturnType<typeof parseArgs>["tokens"];
  try {
    ({ values, tokens } = parseArgs({
      options: {
        "data-dir": { type: "string" },
        host: { type: "string" },
        port: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "log-level": { type: "string" },
        "allow-missing-revocations": { type: "boolean" },
        "trusted-proxy": { type: "string" },
        "health-port": { type: "string" },
        "database-url": { type: "string" },
        "database-schema": { type: "string" },
        "pepper-file": { type: "string" },
        "audit-key-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
      tokens: true,
    }));
  } catch {
    usage("unknown or malformed option");
  }
  // Node keeps the last of a repeated option silently: `--trusted-proxy A --trusted-proxy B`
  // would trust only B. Refused, as the CLI does (packages/cli/src/args.ts).
  const seen = new Set<string>();
  for (const token of tokens ?? []) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name)) usage(`option '--${token.name}' given more than once`);
    seen.add(token.name);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const dataDir = values["data-dir"];
  if (typeof dataDir !== "string" || dataDir === "") usage("--data-dir is required");
  const options: ServerOptions = { dataDir };
  if (typeof values.host === "string") options.host = values.host;
  if (typeof values.port === "string") {
    if (!/^\d{1,5}$/.test(values.port)) usage("--port must be a number");
    options.port = Number(values.port);
  }
  if (typeof values["tls-cert"] === "string") options.tlsCert = values["tls-cert"];
  if (typeof values["tls-key"] === "string") options.tlsKey = values["tls-key"];
  if (values["allow-missing-revocations"] === true) options.allowMissingRevocations = true;
  const healthPort = values["health-port"];
  if (typeof healthPort === "string") {
    if (!/^\d{1,5}$/.test(healthPort)) usage("--health-port must be a number");
    options.healthPort = Number(healthPort);
  }
  // Checked (strictly, with a clear error) by startServer.
  const proxies = values["trusted-proxy"];
  if (typeof proxies === "string") options.trustedProxies = proxies.split(",").map((p) => p.trim());
  Object.assign(options, databaseOptions(values));
  const level = values["log-level"];
  if (typeof level === "string") {
    if (!LEVELS.includes(level)) usage("--log-level must be silent, error, info or debug");
    options.logLevel = level as LogLevel;
  }

  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(options);
  } catch (error) {
    // A full disk or read-only data directory: say so, rather than a bare ENOSPC or EROFS.
    throw startupStorageError(error, dataDir) ?? error;
  }
  process.stderr.write(`keyhole server listening on ${server.url}\n`);
  if (server.healthUrl !== null) process.stderr.write(`health checks on ${server.healthUrl}\n`);
  if (server.bootstrapCode !== null) {
    process.stderr.write(`bootstrap code: ${server.bootstrapCode}\n`);
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * The database options, from the flags or else the environment. The URL is checked for its
 * scheme here and fully by startServer; no message quotes it.
 */
function databaseOptions(
  values: Record<string, string | boolean | undefined>,
): Partial<ServerOptions> {
  const options: Partial<ServerOptions> = {};
  const flagUrl = values["database-url"];
  const url = typeof flagUrl === "string" ? flagUrl : fromEnv("KEYHOLE_DATABASE_URL");
  if (url !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      usage(
        "--database-url (or KEYHOLE_DATABASE_URL) must start with postgres:// or postgresql://",
      );
    }
    if (typeof flagUrl === "string" && hasPassword(url)) {
      process.stderr.write(
        "keyhole server: warning: the password in --database-url can be read by other users " +
          "of this machine (ps); pass the URL in KEYHOLE_DATABASE_URL instead\n",
      );
    }
    options.databaseUrl = url;
  }
  const schema = stringValue(values["database-schema"]);
  const pepperFile = stringValue(values["pepper-file"]) ?? fromEnv("KEYHOLE_PEPPER_FILE");
  const auditKeyFile = stringValue(values["audit-key-file"]) ?? fromEnv("KEYHOLE_AUDIT_KEY_FILE");
  if (url === undefined) {
    // Said before anything starts, in the words of the flags; startServer refuses them too.
    if (schema !== undefined) usage("--database-schema needs --database-url");
    if (pepperFile !== undefined || auditKeyFile !== undefined) {
      usage(
        "--pepper-file and --audit-key-file (KEYHOLE_PEPPER_FILE, KEYHOLE_AUDIT_KEY_FILE) go " +
          "with --database-url only",
      );
    }
  }
  if (schema !== undefined) options.databaseSchema = schema;
  if (pepperFile !== undefined) options.pepperFile = pepperFile;
  if (auditKeyFile !== undefined) options.auditKeyFile = auditKeyFile;
  return options;
}

/** An environment variable, an empty one counting as unset (as `VAR= command` leaves it). */
function fromEnv(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}

function stringValue(value: string | boolean | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    // Malformed: startServer refuses it before any connection.
    return false;
  }
}

main().catch((error: unknown) => {
  // Start-up errors are ours (config_error with a fixed message) or system errors (EADDRINUSE):
  // one line with the code, never a stack trace.
  const text = isKeyholeError(error)
    ? `${error.code}: ${error.message}`
    : ((error as { code?: string }).code ?? "unexpected error");
  process.stderr.write(`keyhole server: ${text}\n`);
  process.exit(1);
});
