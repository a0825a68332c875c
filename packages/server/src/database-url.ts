/**
 * The PostgreSQL URL of `--database-url` (issue 6): checked before anything is started, and the
 * one thing about it that may be shown, `host:port`. The URL can carry the database password, so
 * it is never logged, echoed in an error, or kept in a message; neither is a driver error's own
 * message (it can quote the connection settings or a row). Start-up failures to use the
 * database become one coded line naming `host:port` and the PostgreSQL or system code.
 *
 * This module does not load the `postgres` driver: it only reads error codes.
 */
import { isKeyholeError, KeyholeError } from "@keyhole/core";
import { isConnectionError } from "./store/postgres-errors.js";
import { storageCause } from "./store/storage-errors.js";

/** A checked database URL and what may be said about it. */
export interface DatabaseTarget {
  /** The URL as given, for the driver only. */
  readonly url: string;
  /** `host:port` (no user name, password, database or parameters), for messages. */
  readonly endpoint: string;
}

/**
 * Identifiers Keyhole accepts as a schema name: PostgreSQL's unquoted form (it folds unquoted
 * names to lower case) within its 63-byte limit. The name travels as the connection's
 * `search_path`, where a comma or a quote would change its meaning.
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The query parameters a database URL may carry: how to reach the server, nothing else. */
const URL_PARAMETERS = ["sslmode", "target_session_attrs"] as const;

/** Parameters people put in database URLs, which an error may name (no other text may be). */
const KNOWN_PARAMETERS = new Set([
  "application_name",
  "channel_binding",
  "connect_timeout",
  "gssencmode",
  "idle_in_transaction_session_timeout",
  "lock_timeout",
  "max",
  "options",
  "search_path",
  "sslcert",
  "sslcrl",
  "sslkey",
  "sslnegotiation",
  "sslpassword",
  "sslrootcert",
  "statement_timeout",
]);

/** `sslmode` values the driver implements (it has no `verify-ca`). */
const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-full"] as const;
type SslMode = (typeof SSL_MODES)[number];

/**
 * `target_session_attrs` values that make sense for a server that writes (the driver also has
 * read-only, standby and prefer-standby, which with one host could never connect usefully).
 */
const SESSION_ATTRS = ["read-write", "primary"] as const;

/**
 * Everything the driver needs to connect, taken from the checked URL: the driver is never given
 * the URL itself, which it would parse its own way (it splits the host on the first `@` and on
 * commas, and sends any query parameter it does not know to PostgreSQL as a setting).
 */
export interface DriverTarget {
  /** One host: the driver's list form, so it does not split an IPv6 address on its colons. */
  readonly host: [string];
  readonly port: [number];
  /** A Unix socket, when the URL's host is a directory (`%2Fvar%2Frun%2Fpostgresql`). */
  readonly path?: string;
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  /**
   * `sslmode` (from the URL, else `PGSSLMODE`, else `PGSSL`): false for none; `verify-full` as
   * the TLS options that check the certificate against the host named (the driver sends no
   * server name for an IP address, and Node would then check it against "localhost").
   */
  readonly ssl: false | Exclude<SslMode, "disable" | "verify-full"> | { readonly host: string };
  readonly target_session_attrs?: (typeof SESSION_ATTRS)[number];
}

/**
 * Checks a database URL: `postgres://` or `postgresql://`, parseable as a URL, one host, no
 * fragment, no query parameter but `sslmode` and `target_session_attrs`. The messages never
 * quote it. `env` supplies PGHOST and PGPORT when the URL names no host or port (as libpq
 * does), so the endpoint named in messages is the one really tried.
 */
export function checkDatabaseUrl(
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): DatabaseTarget {
  return { url: text, endpoint: parseDatabaseUrl(text, env).endpoint };
}

/** The driver's connection options for a database URL, checked as `checkDatabaseUrl` does. */
export function driverTarget(
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): DriverTarget {
  return parseDatabaseUrl(text, env).driver;
}

function parseDatabaseUrl(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
): { endpoint: string; driver: DriverTarget } {
  if (!/^postgres(ql)?:\/\//.test(text)) {
    throw new KeyholeError(
      "config_error",
      "the database URL must start with postgres:// or postgresql://",
    );
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw malformed();
  }
  // A `#` is a fragment: in an unencoded password it would cut the password short.
  if (url.hash !== "" || text.includes("#")) throw malformed();
  const query = checkParameters(url.searchParams);
  const hostname = decode(url.hostname);
  if (hostname.includes(",")) {
    throw new KeyholeError("config_error", "the database URL names several hosts: give one");
  }
  const host = hostname !== "" ? hostname : (nonEmpty(env.PGHOST) ?? "localhost");
  const port = url.port !== "" ? url.port : (nonEmpty(env.PGPORT) ?? "5432");
  const portNumber = Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65_535) {
    throw new KeyholeError("config_error", "the database port must be 1 to 65535");
  }
  // An @ in the path is a password's @ (or /) left unencoded: the rest would be misread.
  if (url.pathname.includes("@")) throw malformed();
  const database = decode(url.pathname.replace(/^\//, ""));
  if (database.includes("/")) throw malformed();
  const unbracketed = host.replace(/^\[(.*)\]$/, "$1");
  const driver: DriverTarget = {
    host: [unbracketed],
    port: [portNumber],
    ...(unbracketed.startsWith("/") ? { path: `${unbracketed}/.s.PGSQL.${portNumber}` } : {}),
    ...(url.username === "" ? {} : { user: decode(url.username) }),
    ...(url.password === "" ? {} : { password: decode(url.password) }),
    ...(database === "" ? {} : { database }),
    ssl: sslOption(query.sslmode ?? envSslMode(env), unbracketed),
    ...(query.target_session_attrs === undefined
      ? {}
      : { target_session_attrs: query.target_session_attrs }),
  };
  return { endpoint: `${host}:${port}`, driver };
}

/** Only `URL_PARAMETERS`, each once, with a value the driver implements. */
function checkParameters(params: URLSearchParams): {
  sslmode?: SslMode;
  target_session_attrs?: (typeof SESSION_ATTRS)[number];
} {
  for (const name of new Set(params.keys())) {
    if (!(URL_PARAMETERS as readonly string[]).includes(name)) {
      // The driver would send any other parameter to PostgreSQL as a connection setting, over
      // the server's own (`?search_path=` beating --database-schema, `?statement_timeout=0`).
      // Named only when it is a well-known one: text after a stray ? in an unencoded password
      // would parse as a "parameter", and must not be repeated.
      const named = KNOWN_PARAMETERS.has(name) ? ` "${name}"` : "";
      throw new KeyholeError(
        "config_error",
        `the database URL's parameter${named} is not supported (supported: ` +
          `${URL_PARAMETERS.join(", ")})`,
      );
    }
    if (params.getAll(name).length > 1) {
      throw new KeyholeError("config_error", `the database URL gives ${name} more than once`);
    }
  }
  const sslmode = params.get("sslmode") ?? undefined;
  if (sslmode !== undefined && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new KeyholeError(
      "config_error",
      `the database URL's sslmode must be one of ${SSL_MODES.join(", ")}`,
    );
  }
  const attrs = params.get("target_session_attrs") ?? undefined;
  if (attrs !== undefined && !(SESSION_ATTRS as readonly string[]).includes(attrs)) {
    throw new KeyholeError(
      "config_error",
      `the database URL's target_session_attrs must be one of ${SESSION_ATTRS.join(", ")}`,
    );
  }
  return {
    ...(sslmode === undefined ? {} : { sslmode: sslmode as SslMode }),
    ...(attrs === undefined
      ? {}
      : { target_session_attrs: attrs as (typeof SESSION_ATTRS)[number] }),
  };
}

function malformed(): KeyholeError {
  return new KeyholeError(
    "config_error",
    "the database URL is malformed (percent-encode any of : / ? # @ [ ] % in the user name " +
      "or password; one host only)",
  );
}

/**
 * Percent-decoding that refuses malformed escapes instead of throwing a URIError, and control
 * characters: the driver writes the user and database names into its start-up message between
 * NULs, where an encoded `%00` would add settings of the URL's choosing.
 */
function decode(text: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    throw malformed();
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused.
  if (/[\u0000-\u001f\u007f]/.test(decoded)) throw malformed();
  return decoded;
}

/**
 * The `sslmode` of the environment when the URL names none: libpq's `PGSSLMODE`, else the
 * driver's own `PGSSL` (which it would read itself, were it left to). Checked like the URL's.
 */
function envSslMode(env: Readonly<Record<string, string | undefined>>): SslMode | undefined {
  for (const name of ["PGSSLMODE", "PGSSL"]) {
    const value = nonEmpty(env[name]);
    if (value === undefined) continue;
    if (!(SSL_MODES as readonly string[]).includes(value)) {
      throw new KeyholeError("config_error", `${name} must be one of ${SSL_MODES.join(", ")}`);
    }
    return value as SslMode;
  }
  return undefined;
}

/** The driver's `ssl` for an `sslmode` and the host connected to. */
function sslOption(mode: SslMode | undefined, host: string): DriverTarget["ssl"] {
  if (mode === undefined || mode === "disable") return false;
  return mode === "verify-full" ? { host } : mode;
}

/** Checks a schema name (`--database-schema`); the message names the rule, not the value. */
export function checkSchemaName(schema: string): void {
  if (!SCHEMA_NAME.test(schema)) {
    throw new KeyholeError(
      "config_error",
      "the database schema must be 1 to 63 lower-case letters, digits or _, not starting " +
        "with a digit",
    );
  }
}

/**
 * The one-line coded error for a failure to open or first use the database at start-up. Only
 * `endpoint` and a code (PostgreSQL's SQLSTATE, the driver's or the system's) are kept: never
 * the original message.
 */
export function databaseStartupError(error: unknown, endpoint: string): KeyholeError {
  // A failure the store already answered (store/postgres-errors.ts) keeps its cause beside it.
  const cause = storageCause(error);
  const raw = (error as { code?: unknown } | null)?.code;
  // Driver, system and SQLSTATE codes only: anything else in `code` is not repeated.
  const known = typeof raw === "string" && /^[A-Z0-9_]{1,40}$/.test(raw) && !isKeyholeError(error);
  const code = cause ?? (known ? `PG_${raw}` : null);
  const bare = code?.replace(/^PG_/, "") ?? "";
  const where = `the database at ${endpoint}`;
  const suffix = code === null ? "" : ` (${code})`;
  if (
    (cause !== null && isKeyholeError(error) && error.code === "unavailable") ||
    isConnectionError(error) ||
    bare === "ENOTFOUND"
  ) {
    return new KeyholeError(
      "unavailable",
      `cannot reach ${where}${suffix}; check that PostgreSQL runs there and accepts ` +
        "connections from this host",
    );
  }
  if (bare === "28P01" || bare === "28000") {
    return new KeyholeError(
      "config_error",
      `${where} refused the user name or password in the database URL${suffix}`,
    );
  }
  if (bare === "3D000") {
    return new KeyholeError(
      "config_error",
      `the database named in the URL does not exist at ${endpoint}${suffix}`,
    );
  }
  if (bare === "3F000") {
    return new KeyholeError(
      "config_error",
      `the --database-schema does not exist in ${where}; create it first${suffix}`,
    );
  }
  if (bare === "42501") {
    return new KeyholeError(
      "config_error",
      `the database user may not create or use Keyhole's tables in ${where}${suffix}`,
    );
  }
  if (isKeyholeError(error) && error.code === "storage_unavailable") {
    return new KeyholeError("storage_unavailable", `${where} cannot store data${suffix}`);
  }
  return new KeyholeError("config_error", `cannot use ${where}${suffix}`);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
