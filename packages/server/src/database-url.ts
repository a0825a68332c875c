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
const URL_PARAMETERS = new Set(["sslmode", "sslrootcert", "target_session_attrs"]);

/**
 * Checks a database URL: `postgres://` or `postgresql://`, parseable as a URL, with no query
 * parameter but those of `URL_PARAMETERS`. The messages never quote it. `env` supplies PGHOST and PGPORT, which the driver falls back to when the URL
 * names no host or port, so the endpoint named in messages is the one really tried.
 */
export function checkDatabaseUrl(
  text: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): DatabaseTarget {
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
    // The driver would split such a URL its own way, possibly taking part of a password for the
    // host; refused instead, with the usual cause named.
    throw new KeyholeError(
      "config_error",
      "the database URL is malformed (percent-encode any of : / ? # @ [ ] % in the user name " +
        "or password; several hosts with ports are not supported)",
    );
  }
  for (const name of url.searchParams.keys()) {
    if (!URL_PARAMETERS.has(name)) {
      // The driver would send any other parameter to PostgreSQL as a connection setting, over
      // the server's own (`?search_path=` beating --database-schema, `?statement_timeout=0`).
      const named = /^[a-z_]{1,40}$/.test(name) ? ` "${name}"` : "";
      throw new KeyholeError(
        "config_error",
        `the database URL's parameter${named} is not supported (supported: ` +
          `${[...URL_PARAMETERS].join(", ")})`,
      );
    }
  }
  const host = url.hostname !== "" ? url.hostname : (nonEmpty(env.PGHOST) ?? "localhost");
  const port = url.port !== "" ? url.port : (nonEmpty(env.PGPORT) ?? "5432");
  return { url: text, endpoint: `${host}:${port}` };
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
