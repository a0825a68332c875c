/**
 * `keyhole audit` (read the log, filter it, follow it) and `keyhole audit verify` (check the
 * hash chain, the signed checkpoint and this machine's pin).
 */
import type { AuditEntryView } from "@keyhole/core";
import {
  CONNECT_OPTIONS,
  type Command,
  checkName,
  flag,
  JSON_OPTION,
  parseDuration,
  parseInteger,
  parseOrHelp,
  stringOption,
} from "../args.js";
import { formatTable, formatTime } from "../format.js";
import { type Io, printJson, writeOut } from "../io.js";
import { listAgents } from "../owner/agents.js";
import { type AuditFilter, fetchAudit, verifyAuditLog } from "../owner/audit.js";
import { listSecrets } from "../owner/secrets.js";
import { insecureHttpAllowed, type OwnerSession, withSession } from "../owner/session.js";

const USAGE = `Usage: keyhole audit [--agent A] [--secret S] [--since 1h] [--limit N] [--follow] [--json]
       keyhole audit verify [--insecure-http]

Show the audit log: every authenticated request, success, refusal or failed
authentication, oldest first. Without --limit the newest 100 matching entries are shown.

Options:
  --agent A          only entries about agent A
  --secret S         only entries about secret S
  --since DUR        only entries from the last DUR: 45s, 15m, 1h, 30d
  --limit N          show the newest N matching entries (1-100000, default 100)
  --follow           keep polling every second for new entries until Ctrl-C
  --json             print JSON (with --follow: one JSON object per line)
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help

\`keyhole audit verify\` recomputes the hash chain over every entry, checks the server's
checkpoint signature with the audit key pinned at init, checks that the log neither
shrank nor changed since the checkpoint pinned last time, then pins the new one.
Exit 1, naming the bad entry, when anything does not match.
`;

const VERIFY_USAGE = `Usage: keyhole audit verify [--insecure-http]

Recompute the audit log's hash chain over every entry, check the server's checkpoint
signature with the audit key pinned at init, and check that the log neither shrank nor
changed since the checkpoint this machine pinned last time; then pin the new checkpoint.
Exit 1, with a line naming the bad entry, when anything does not match.

Options:
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help
`;

const POLL_MS = 1000;

/** Names for ids, so the table says `deploy-bot` rather than `agt_…`. Best effort. */
async function nameMap(session: OwnerSession): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const agent of await listAgents(session)) names.set(agent.id, agent.name);
  for (const secret of await listSecrets(session)) names.set(secret.id, secret.name);
  return names;
}

/** The audit table. */
export function formatAuditTable(
  entries: readonly AuditEntryView[],
  names: ReadonlyMap<string, string>,
  withHeader = true,
): string {
  const name = (id: string) => (id === "" ? "-" : (names.get(id) ?? id));
  const rows = entries.map((e) => [
    String(e.seq),
    formatTime(e.ts),
    e.actor_type === "agent" ? `agent:${name(e.actor_id)}` : e.actor_type,
    e.action,
    e.result,
    name(e.agent_id),
    name(e.secret_id),
    e.secret_version === 0 ? "-" : String(e.secret_version),
    e.client_ip === "" ? "-" : e.client_ip,
  ]);
  const headers = ["seq", "time", "actor", "action", "result", "agent", "secret", "ver", "client"];
  const table = formatTable(headers, rows);
  return withHeader ? table : table.slice(table.indexOf("\n") + 1);
}

function printEntries(
  io: Io,
  entries: readonly AuditEntryView[],
  names: ReadonlyMap<string, string>,
  mode: "json" | "ndjson" | "table" | "rows",
): void {
  if (mode === "json") printJson(io, entries);
  else if (mode === "ndjson") for (const e of entries) writeOut(io, `${JSON.stringify(e)}\n`);
  else if (entries.length > 0 || mode === "table") {
    writeOut(io, formatAuditTable(entries, names, mode === "table"));
  }
}

async function follow(
  io: Io,
  session: OwnerSession,
  filter: AuditFilter,
  after: number,
  names: Map<string, string>,
  json: boolean,
): Promise<void> {
  const stop = io.waitForSignal();
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  let last = after;
  while (!stopped) {
    await Promise.race([stop, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
    if (stopped) break;
    const entries = await fetchAudit(session, filter, { after: last });
    if (entries.some((e) => !names.has(e.agent_id) || !names.has(e.secret_id))) {
      for (const [id, name] of await nameMap(session)) names.set(id, name);
    }
    printEntries(io, entries, names, json ? "ndjson" : "rows");
    last = entries.at(-1)?.seq ?? last;
  }
}

async function list(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, USAGE, argv, {
    ...CONNECT_OPTIONS,
    ...JSON_OPTION,
    agent: { type: "string" },
    secret: { type: "string" },
    since: { type: "string" },
    limit: { type: "string" },
    follow: { type: "boolean" },
  });
  if (args === null) return 0;
  const agent = stringOption(args, "agent");
  const secret = stringOption(args, "secret");
  const since = stringOption(args, "since");
  const limitText = stringOption(args, "limit");
  const limit = limitText === undefined ? 100 : parseInteger(limitText, "--limit", 1, 100_000);
  const filter: AuditFilter = {
    ...(agent === undefined ? {} : { agent: checkName(agent, "agent name") }),
    ...(secret === undefined ? {} : { secret: checkName(secret, "secret name") }),
    ...(since === undefined ? {} : { since: io.now() - parseDuration(since, "--since") }),
  };
  const json = flag(args, "json");
  const following = flag(args, "follow");
  const insecureHttp = insecureHttpAllowed(io, flag(args, "insecure-http"));
  await withSession(io, { insecureHttp }, async (session) => {
    const entries = await fetchAudit(session, filter, { keepLast: limit });
    const names = json ? new Map<string, string>() : await nameMap(session);
    printEntries(io, entries, names, json ? (following ? "ndjson" : "json") : "table");
    if (following) await follow(io, session, filter, entries.at(-1)?.seq ?? 0, names, json);
  });
  return 0;
}

async function verify(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, VERIFY_USAGE, argv, CONNECT_OPTIONS);
  if (args === null) return 0;
  const insecureHttp = insecureHttpAllowed(io, flag(args, "insecure-http"));
  const result = await withSession(io, { insecureHttp }, (session) => verifyAuditLog(session));
  const previous =
    result.previousPin === null
      ? "first pin"
      : `previous pin at size ${result.previousPin.size} still matches`;
  writeOut(
    io,
    `audit log ok: ${result.entries} entries chain correctly; checkpoint at size ` +
      `${result.checkpoint.size} is signed by the pinned audit key (${previous}); pinned\n`,
  );
  return 0;
}

/** `keyhole audit`. */
export const auditCommand: Command = {
  usage: USAGE,
  run: (argv, io) => (argv[0] === "verify" ? verify(argv.slice(1), io) : list(argv, io)),
};
