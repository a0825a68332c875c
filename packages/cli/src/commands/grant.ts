/**
 * `keyhole grant add|rm|list`: which agent may read which secret, with optional expiry and
 * destination hosts, signed by the owner.
 */
import { canonicalHosts, isKeyholeError } from "@keyhole/core";
import {
  CONNECT_OPTIONS,
  type Command,
  checkName,
  flag,
  JSON_OPTION,
  parseDuration,
  parseInteger,
  parseList,
  parseOrHelp,
  runSubcommand,
  stringOption,
  usageError,
} from "../args.js";
import { formatReadsLeft, formatTable, formatTime } from "../format.js";
import { type Io, note, printJson, writeOut } from "../io.js";
import { addGrant, listGrants, removeGrant } from "../owner/grants.js";
import { insecureHttpAllowed, withSession } from "../owner/session.js";

const USAGE = `Usage: keyhole grant <command> [options]

Manage grants: which agent may read which secret.

Commands:
  add AGENT SECRET [--expires 1h] [--hosts h1,h2] [--max-uses N]
                          let AGENT read SECRET (replaces an existing grant of the pair)
  rm AGENT SECRET         take the grant away; SECRET is marked "rotation recommended"
  list [--agent A]        list grants

Run \`keyhole grant <command> --help\` for the options of a command.
`;

const ADD_USAGE = `Usage: keyhole grant add AGENT SECRET [--expires 1h] [--hosts h1,h2] [--max-uses N]

Let AGENT read SECRET. The agent's public key is first checked against the owner's
signature and the key this machine gave the agent (a key swapped by the server is
refused and nothing is wrapped), then the secret's data key is wrapped for the agent
and the grant is signed. The grant and its limits are recorded on this machine: later
re-wraps use them, never the server's copy.

Options:
  --expires DUR      the grant expires after DUR: 45s, 15m, 1h, 30d
  --hosts h1,h2      the only hosts the secret may be sent to (host or host:port)
  --max-uses N       the agent may read SECRET N times in all (1 to 1000000000); the
                     server counts successful reads and refuses the next one. Running
                     \`grant add\` again sets a fresh budget; \`secret set\` and \`agent
                     rotate\` keep the reads already spent
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help
`;

const RM_USAGE = `Usage: keyhole grant rm AGENT SECRET [--insecure-http]

Take away AGENT's grant of SECRET and delete its wrap. The secret is marked "rotation
recommended": the agent may already have read it.

Options:
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help
`;

const LIST_USAGE = `Usage: keyhole grant list [--agent A] [--json] [--insecure-http]

List grants: agent, secret, version, expiry, allowed hosts and reads left.

Options:
  --agent A          only the grants of agent A
  --json             print JSON
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help
`;

function connect(io: Io, insecure: boolean) {
  return { insecureHttp: insecureHttpAllowed(io, insecure) };
}

/** Parses `--hosts` into core's canonical form (lower-case, sorted, unique). */
export function parseHosts(text: string): string[] {
  try {
    return canonicalHosts(parseList(text, "--hosts"));
  } catch (error) {
    if (isKeyholeError(error) && error.code === "bad_request") {
      throw usageError("--hosts must list host or host:port names, e.g. api.openai.com");
    }
    throw error;
  }
}

const add: Command = {
  usage: ADD_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(
      io,
      ADD_USAGE,
      argv,
      {
        ...CONNECT_OPTIONS,
        expires: { type: "string" },
        hosts: { type: "string" },
        "max-uses": { type: "string" },
      },
      ["AGENT", "SECRET"],
    );
    if (args === null) return 0;
    const agent = checkName(args.positionals[0] ?? "", "agent name");
    const secret = checkName(args.positionals[1] ?? "", "secret name");
    const expires = stringOption(args, "expires");
    const ttl = expires === undefined ? null : parseDuration(expires, "--expires");
    const hostsText = stringOption(args, "hosts");
    const allowedHosts = hostsText === undefined ? [] : parseHosts(hostsText);
    const maxUsesText = stringOption(args, "max-uses");
    const maxUses =
      maxUsesText === undefined ? 0 : parseInteger(maxUsesText, "--max-uses", 1, 1_000_000_000);
    const grant = await withSession(io, connect(io, flag(args, "insecure-http")), (session) =>
      addGrant(session, agent, secret, {
        notAfter: ttl === null ? 0 : io.now() + ttl,
        allowedHosts,
        maxUses,
      }),
    );
    const limits = [
      grant.not_after === 0 ? "no expiry" : `expires ${formatTime(grant.not_after)}`,
      allowedHosts.length === 0 ? "any host" : `hosts ${allowedHosts.join(",")}`,
      maxUses === 0 ? "unlimited reads" : `${maxUses} reads`,
    ];
    note(io, `granted ${secret} v${grant.version} to ${agent} (${limits.join(", ")})`);
    return 0;
  },
};

const rm: Command = {
  usage: RM_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, RM_USAGE, argv, CONNECT_OPTIONS, ["AGENT", "SECRET"]);
    if (args === null) return 0;
    const agent = checkName(args.positionals[0] ?? "", "agent name");
    const secret = checkName(args.positionals[1] ?? "", "secret name");
    await withSession(io, connect(io, flag(args, "insecure-http")), (session) =>
      removeGrant(session, agent, secret),
    );
    note(io, `removed ${agent}'s grant of ${secret}; ${secret} is marked "rotation recommended"`);
    return 0;
  },
};

const list: Command = {
  usage: LIST_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, LIST_USAGE, argv, {
      ...CONNECT_OPTIONS,
      ...JSON_OPTION,
      agent: { type: "string" },
    });
    if (args === null) return 0;
    const agentOption = stringOption(args, "agent");
    const agent = agentOption === undefined ? undefined : checkName(agentOption, "agent name");
    const grants = await withSession(io, connect(io, flag(args, "insecure-http")), (session) =>
      listGrants(session, agent),
    );
    if (flag(args, "json")) {
      printJson(io, grants);
      return 0;
    }
    const rows = grants.map((g) => [
      g.agent_name,
      g.secret_name,
      String(g.version),
      formatTime(g.not_after),
      g.allowed_hosts.length === 0 ? "any" : g.allowed_hosts.join(","),
      formatReadsLeft(g),
      formatTime(g.created_at),
    ]);
    const header = ["agent", "secret", "version", "expires", "hosts", "reads left", "granted"];
    writeOut(io, formatTable(header, rows));
    return 0;
  },
};

/** `keyhole grant`. */
export const grantCommand: Command = {
  usage: USAGE,
  run: (argv, io) => runSubcommand(argv, io, "grant", USAGE, { add, rm, list }),
};
