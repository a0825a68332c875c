/**
 * `keyhole migrate --from sqlite:PATH --to postgres://…`: copies a stopped server's vault from
 * its SQLite database to PostgreSQL, once, when moving to several servers on one database
 * (docs/scaling.md). The work and its checks are the server package's
 * (`migrateSqliteToPostgres`); this file parses, validates and reports.
 *
 * The target URL carries the database password: it is never printed, not in the summary (which
 * shows scheme, host, port and database only) and not in an error (the server package reports
 * PostgreSQL failures by SQLSTATE).
 */
import { resolve } from "node:path";
import type { MigrateProgress, MigrateSummary } from "@keyhole/server";
import { type Command, parseOrHelp, stringOption, usageError } from "../args.js";
import { sanitize } from "../format.js";
import { type Io, note } from "../io.js";

const USAGE = `Usage: keyhole migrate --from sqlite:PATH [--to URL] [--to-schema NAME]

Copy a vault from the embedded SQLite database to PostgreSQL, once, to move from one server
to several on one database. Stop the SQLite server first (migrate refuses while it runs, and
holds its data directory's lock while copying): anything written after the copy would be
left behind. The source is only read. The target must be empty; its tables are created.

Checked before anything is committed: the source's audit chain from its first entry (a
broken chain is refused, naming the entry), then, as read back from PostgreSQL, the row
count and contents of every table and the audit chain again, which must end at the same
entry and hash. It all runs in one PostgreSQL transaction: on any failure nothing is kept.

Options:
  --from sqlite:PATH  the SQLite server's data directory (its keyhole.db is read, and its
                      revoked-tokens list checked), or a database file such as a backup
  --to URL            the target: postgres://USER:PASSWORD@HOST:PORT/DATABASE (or
                      postgresql://). Prefer KEYHOLE_DATABASE_URL: a command line, and the
                      password in it, can be read by other users of this machine (ps)
  --to-schema NAME    the schema to create the tables in (it must exist; default: the
                      role's default, normally public). Lower-case letters, digits and _
  -h, --help          show this help

Not in the database, so not copied; carry them yourself:
  DIR/pepper          the key of every agent token's verifier: start each PostgreSQL server
                      with a copy of it (--pepper-file), or no agent token works
  DIR/audit-key       the audit checkpoint signing key: start each server with a copy of it
                      (--audit-key-file), or the owner's CLI refuses the new checkpoints
  DIR/revoked-tokens  nothing to carry: each server rebuilds its list from the database's
                      retired tokens (migrate refuses a vault whose list names a token that
                      is live again in the database, as after restoring an old backup)
Keep copies of the key files private (mode 0600), and off the database server.

Environment:
  KEYHOLE_DATABASE_URL  the target URL when --to is not given

Exit codes: 0 copied and verified, 1 refused or failed (nothing kept), 2 usage error.
`;

const OPTIONS = {
  from: { type: "string" },
  to: { type: "string" },
  "to-schema": { type: "string" },
} as const;

/** A schema name passed as `search_path`: kept to what needs no quoting or case folding. */
const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

/** `sqlite:PATH` → the absolute PATH. */
function parseFrom(io: Io, text: string | undefined): string {
  if (text === undefined)
    throw usageError("missing --from sqlite:PATH (see keyhole migrate --help)");
  if (!text.startsWith("sqlite:")) {
    throw usageError("--from must be sqlite:PATH (a data directory or a database file)");
  }
  const path = text.slice("sqlite:".length);
  if (path === "") throw usageError("--from sqlite: needs a PATH");
  // `sqlite://x` would quietly mean the absolute path /x: a URL form we do not take.
  if (path.startsWith("//")) {
    throw usageError("--from takes sqlite:PATH, not a URL (e.g. sqlite:/var/lib/keyhole)");
  }
  return resolve(io.cwd, path);
}

/**
 * The target URL from --to or the environment. Errors name where it came from but never echo
 * it: it holds the password.
 */
function parseTo(io: Io, option: string | undefined): string {
  const from = option === undefined ? "KEYHOLE_DATABASE_URL" : "--to";
  const url = option ?? io.env.KEYHOLE_DATABASE_URL;
  if (url === undefined || url === "") {
    throw usageError("missing --to URL (or KEYHOLE_DATABASE_URL, preferred)");
  }
  if (!/^postgres(ql)?:\/\/[^/]/.test(url)) {
    throw usageError(`${from} must be a postgres:// or postgresql:// URL`);
  }
  if (/[\s\p{Cc}]/u.test(url)) throw usageError(`${from} contains spaces or control characters`);
  return url;
}

function parseSchema(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!SCHEMA.test(text)) {
    throw usageError(
      `invalid --to-schema '${sanitize(text).slice(0, 40)}' (1-63 of a-z 0-9 _, not starting ` +
        "with a digit)",
    );
  }
  return text;
}

/** `scheme://host:port/database`: what the summary shows of the URL (no user, no password). */
export function describeTarget(url: string, schema: string | undefined): string {
  let where = "PostgreSQL";
  try {
    const parsed = new URL(url);
    where = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    // Several hosts (`h1:5432,h2:5432`) are not a WHATWG URL: say less rather than echo it.
  }
  return schema === undefined ? where : `${where} (schema ${schema})`;
}

const PHASES: Readonly<Record<MigrateProgress["phase"], string>> = {
  "verify-source": "verifying the source's audit chain",
  copy: "copying",
  "verify-target": "reading back from PostgreSQL and verifying",
};

/** Progress on stderr: each phase once, and a line every 100,000 rows of a large table. */
function progressReporter(io: Io): (progress: MigrateProgress) => void {
  let phase: string | null = null;
  return (progress) => {
    if (progress.phase !== phase) {
      phase = progress.phase;
      note(io, `${PHASES[progress.phase]}…`);
    }
    if (!progress.done)
      note(io, `  ${progress.table}: ${progress.rows.toLocaleString("en-US")} rows`);
  };
}

function hexPrefix(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 8)).toString("hex");
}

/** The summary on stdout, and what the operator must carry over. */
function printSummary(io: Io, summary: MigrateSummary, target: string): void {
  const lines = [
    `Migrated ${summary.source}`,
    `      to ${target} in ${(summary.ms / 1000).toFixed(1)} s.`,
    "",
  ];
  const head = `  head ${hexPrefix(summary.auditHead)}… (chain verified in both)`;
  for (const { table, rows } of summary.rows) {
    const count = rows.toLocaleString("en-US").padStart(12);
    lines.push(`  ${table.padEnd(16)}${count}${table === "audit" ? head : ""}`);
  }
  const dir = summary.dataDir ?? "the data directory this database came from";
  const kids = summary.pepperKids.length === 0 ? "none live" : summary.pepperKids.join(", ");
  lines.push(
    "",
    "Not in the database, to carry yourself before starting servers on PostgreSQL:",
    `  ${dir}/pepper: every server needs a copy (--pepper-file); live tokens use pepper id ${kids}`,
    `  ${dir}/audit-key: every server needs a copy (--audit-key-file); the owner pinned its key`,
    "  revoked-tokens: nothing to carry; each server rebuilds it from the database",
    "Keep the SQLite server stopped: what it writes from now on is not in PostgreSQL.",
  );
  if (summary.lastUsedDiffers > 0) {
    lines.push(
      `Note: ${summary.lastUsedDiffers} agent(s) will show another last-used time: PostgreSQL ` +
        "reads it from the audit log, which disagrees with the SQLite column.",
    );
  }
  io.stdout.write(`${lines.join("\n")}\n`);
}

async function migrate(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, USAGE, argv, OPTIONS);
  if (args === null) return 0;
  const from = parseFrom(io, stringOption(args, "from"));
  const url = parseTo(io, stringOption(args, "to"));
  const schema = parseSchema(stringOption(args, "to-schema"));
  const target = describeTarget(url, schema);
  // Loaded only here: the server package, and through it the PostgreSQL driver.
  const { migrateSqliteToPostgres } = await import("@keyhole/server");
  note(io, `migrating ${from} to ${target}`);
  const summary = await migrateSqliteToPostgres({
    from,
    to: schema === undefined ? { url } : { url, schema },
    onProgress: progressReporter(io),
  });
  printSummary(io, summary, target);
  return 0;
}

/** `keyhole migrate`. */
export const migrateCommand: Command = { usage: USAGE, run: migrate };
