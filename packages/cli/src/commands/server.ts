/**
 * `keyhole server`: run the Keyhole server in this process until SIGINT/SIGTERM. The server
 * package is loaded only here and in `dev`, so owner commands start fast and never load it.
 *
 * With a PostgreSQL URL (`--database-url`, better `KEYHOLE_DATABASE_URL`: argv is visible to
 * every local user, the environment is not) several servers share one database; each keeps its
 * own data directory, and all must be given the same pepper and audit key files.
 */
import { join, resolve } from "node:path";
import { KeyholeError } from "@keyhole/core";
import type { RunningServer, ServerOptions } from "@keyhole/server";
import {
  type Command,
  type ParsedArgs,
  parseCidrList,
  parseInteger,
  parseOrHelp,
  stringOption,
  usageError,
} from "../args.js";
import { type Io, note } from "../io.js";
import { keyholeHome } from "../owner/config.js";

const USAGE = `Usage: keyhole server [--data-dir DIR] [--host 127.0.0.1] [--port 8250]
                      [--tls-cert FILE --tls-key FILE] [--log-level info]
                      [--allow-missing-revocations] [--metrics]
                      [--trusted-proxy CIDR,...] [--health-port PORT]
                      [--database-url URL] [--database-schema NAME]
                      [--pepper-file FILE] [--audit-key-file FILE]

Run the Keyhole server (embedded SQLite in DIR, or a shared PostgreSQL database) until
Ctrl-C. On first start it prints a one-time bootstrap code and writes it to
DIR/bootstrap-code (mode 0600); the first \`keyhole init\` must present it, so nobody
else can claim a fresh server.

Options:
  --data-dir DIR     where the database and keys live (default $KEYHOLE_HOME/server-data,
                     i.e. ~/.keyhole/server-data)
  --host HOST        address to listen on (default 127.0.0.1)
  --port PORT        port to listen on, 0 for any free port (default 8250)
  --tls-cert FILE    serve HTTPS with this PEM certificate (needs --tls-key)
  --tls-key FILE     the PEM private key of --tls-cert
  --log-level LEVEL  silent, error, info or debug (default info)
  --allow-missing-revocations
                     start although DIR/revoked-tokens is missing on an initialised vault:
                     re-creates it from the database (revocations made after a restored
                     backup are lost; revoke or rotate the agents that may be affected)
  --metrics          serve GET /metrics (Prometheus text format: request counts and
                     latencies by route pattern, failed authentications, audit chain
                     length; no names, ids or addresses). Off by default
  --trusted-proxy CIDR,...
                     reverse proxies in front of this server (ranges or addresses).
                     Only from these is X-Forwarded-For read for the client address
                     that rate limits, agent --cidr allowlists and the audit log use;
                     from anyone else it is ignored. List the proxies themselves: any
                     host in these ranges can claim any client address. Default: none
  --health-port PORT also answer GET /healthz and /readyz (only those, plain HTTP) on
                     this port: probes that open a new connection each time (the
                     kubelet's) are then not queued behind a flood on the main port
  --database-url URL keep the data in PostgreSQL instead of DIR/keyhole.db, so several
                     servers (each with its own --data-dir) can share it:
                     postgres://user:password@host:port/database (or postgresql://).
                     Prefer the environment variable KEYHOLE_DATABASE_URL: any user of
                     this machine can read a command line (ps), and the URL may hold the
                     password. Add ?sslmode=verify-full for a database across a network
  --database-schema NAME
                     the existing schema for Keyhole's tables (lower-case letters,
                     digits, _); default: the database user's default, normally public
  --pepper-file FILE the token pepper for --database-url (or KEYHOLE_PEPPER_FILE): 32
                     random bytes, mode 0600, the same file on every server. Required
                     with --database-url, refused without it (SQLite keeps it in DIR)
  --audit-key-file FILE
                     the audit checkpoint signing key for --database-url (or
                     KEYHOLE_AUDIT_KEY_FILE): 32 random bytes, mode 0600, the same on
                     every server, different from the pepper. Required with
                     --database-url, refused without it. Make each key file once with:
                     (umask 077; head -c 32 /dev/urandom > FILE)
  -h, --help         show this help
`;

const LOG_LEVELS = ["silent", "error", "info", "debug"] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** Starts the server, turning the usual listen failures into one clear line. */
export async function startServerForCli(options: ServerOptions): Promise<RunningServer> {
  const { startServer } = await import("@keyhole/server");
  try {
    return await startServer(options);
  } catch (error) {
    const { code, port } = error as { code?: unknown; port?: unknown };
    // The health listener starts second: an error naming its port is about it.
    const health =
      options.healthPort !== undefined && options.healthPort !== 0 && port === options.healthPort;
    const where = `${options.host ?? "127.0.0.1"}:${health ? options.healthPort : (options.port ?? 8250)}`;
    if (code === "EADDRINUSE") {
      const hint = health ? "--health-port" : "--port";
      throw new KeyholeError("config_error", `${where} is already in use (try ${hint})`);
    }
    if (code === "EACCES") {
      throw new KeyholeError("config_error", `not allowed to listen on ${where}`);
    }
    if (code === "EADDRNOTAVAIL") {
      throw new KeyholeError(
        "config_error",
        `${options.host ?? ""} is not an address of this machine`,
      );
    }
    throw error;
  }
}

/** The lines that tell the operator how to claim a fresh server. */
export function bootstrapLines(url: string, dataDir: string, code: string): string[] {
  return [
    `bootstrap code: ${code}`,
    `  (also in ${join(dataDir, "bootstrap-code")}, mode 0600; valid until the first init)`,
    `  claim this server with: keyhole init --addr ${url} --bootstrap-code ${code}`,
  ];
}

/**
 * The database options, each from its flag or else the environment (an empty variable is
 * unset). The URL's scheme is checked here, the rest by the server; no message quotes the URL,
 * which may hold a password.
 */
export function databaseOptions(
  args: ParsedArgs,
  io: Pick<Io, "env" | "cwd" | "stderr">,
): Pick<ServerOptions, "databaseUrl" | "databaseSchema" | "pepperFile" | "auditKeyFile"> {
  const env = (name: string) => {
    const value = io.env[name];
    return value === undefined || value === "" ? undefined : value;
  };
  const flagUrl = stringOption(args, "database-url");
  const url = flagUrl ?? env("KEYHOLE_DATABASE_URL");
  const schema = stringOption(args, "database-schema");
  const pepperFile = stringOption(args, "pepper-file") ?? env("KEYHOLE_PEPPER_FILE");
  const auditKeyFile = stringOption(args, "audit-key-file") ?? env("KEYHOLE_AUDIT_KEY_FILE");
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) {
    throw usageError(
      "--database-url (or KEYHOLE_DATABASE_URL) must start with postgres:// or postgresql://",
    );
  }
  if (url === undefined) {
    // Said before anything starts, in the words of the flags; the server refuses them too.
    if (schema !== undefined) throw usageError("--database-schema needs --database-url");
    if (pepperFile !== undefined || auditKeyFile !== undefined) {
      throw usageError(
        "--pepper-file and --audit-key-file (KEYHOLE_PEPPER_FILE, KEYHOLE_AUDIT_KEY_FILE) go " +
          "with --database-url only",
      );
    }
    return {};
  }
  if (flagUrl !== undefined && hasPassword(flagUrl)) {
    io.stderr.write(
      "warning: the password in --database-url can be read by other users of this machine " +
        "(ps); pass the URL in KEYHOLE_DATABASE_URL instead\n",
    );
  }
  return {
    databaseUrl: url,
    ...(schema === undefined ? {} : { databaseSchema: schema }),
    ...(pepperFile === undefined ? {} : { pepperFile: resolve(io.cwd, pepperFile) }),
    ...(auditKeyFile === undefined ? {} : { auditKeyFile: resolve(io.cwd, auditKeyFile) }),
  };
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    // Malformed: the server refuses it before any connection.
    return false;
  }
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, USAGE, argv, {
    "data-dir": { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "log-level": { type: "string" },
    "allow-missing-revocations": { type: "boolean" },
    metrics: { type: "boolean" },
    "trusted-proxy": { type: "string" },
    "health-port": { type: "string" },
    "database-url": { type: "string" },
    "database-schema": { type: "string" },
    "pepper-file": { type: "string" },
    "audit-key-file": { type: "string" },
  });
  if (args === null) return 0;
  const dataDirOption = stringOption(args, "data-dir");
  const dataDir =
    dataDirOption === undefined
      ? join(keyholeHome(io), "server-data")
      : resolve(io.cwd, dataDirOption);
  const host = stringOption(args, "host") ?? "127.0.0.1";
  const portText = stringOption(args, "port");
  const port = portText === undefined ? 8250 : parseInteger(portText, "--port", 0, 65535);
  const tlsCert = stringOption(args, "tls-cert");
  const tlsKey = stringOption(args, "tls-key");
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw usageError("--tls-cert and --tls-key go together");
  }
  const levelText = stringOption(args, "log-level") ?? "info";
  if (!LOG_LEVELS.includes(levelText as LogLevel)) {
    throw usageError("--log-level must be silent, error, info or debug");
  }
  const healthText = stringOption(args, "health-port");
  const healthPort =
    healthText === undefined ? undefined : parseInteger(healthText, "--health-port", 0, 65535);
  const proxyText = stringOption(args, "trusted-proxy");
  const trustedProxies = proxyText === undefined ? [] : parseCidrList(proxyText, "--trusted-proxy");
  const database = databaseOptions(args, io);
  const server = await startServerForCli({
    dataDir,
    host,
    port,
    logLevel: levelText as LogLevel,
    log: (line) => note(io, line),
    ...(args.values["allow-missing-revocations"] === true ? { allowMissingRevocations: true } : {}),
    ...(args.values.metrics === true ? { metrics: true } : {}),
    ...(trustedProxies.length === 0 ? {} : { trustedProxies }),
    ...(healthPort === undefined ? {} : { healthPort }),
    ...(tlsCert === undefined ? {} : { tlsCert: resolve(io.cwd, tlsCert) }),
    ...(tlsKey === undefined ? {} : { tlsKey: resolve(io.cwd, tlsKey) }),
    ...database,
  });
  note(io, `keyhole server listening on ${server.url} (vault ${server.vaultId}, data ${dataDir})`);
  if (server.healthUrl !== null) note(io, `health checks on ${server.healthUrl}`);
  if (server.bootstrapCode !== null) {
    for (const line of bootstrapLines(server.url, dataDir, server.bootstrapCode)) note(io, line);
  }
  const signal = await io.waitForSignal();
  note(io, `${signal}: shutting down`);
  await server.close();
  return 0;
}

/** `keyhole server`. */
export const serverCommand: Command = { usage: USAGE, run };
