/**
 * `keyhole agent create|list|show|rotate|revoke`. Tokens are minted on the owner's machine and
 * shown once: on stdout, or written to a 0600 file with nothing secret printed.
 */
import { access } from "node:fs/promises";
import { resolve } from "node:path";
import { type AgentRevokeResponse, type AgentView, isKeyholeError } from "@keyhole/core";
import {
  CONNECT_OPTIONS,
  type Command,
  checkName,
  flag,
  JSON_OPTION,
  parseCidrList,
  parseDuration,
  parseNameList,
  parseOrHelp,
  runSubcommand,
  stringOption,
} from "../args.js";
import { formatReadsLeft, formatTable, formatTime } from "../format.js";
import { type Io, note, printJson, writeOut } from "../io.js";
import {
  type AgentWithToken,
  createAgent,
  listAgents,
  requireAgent,
  revokeAgent,
  rotateAgent,
} from "../owner/agents.js";
import { pendingTokenPath } from "../owner/pending-token.js";
import { pinnedKeyState } from "../owner/pin-checks.js";
import { type RotatedIntoFile, rotateIntoFile } from "../owner/rotate-to-file.js";
import { insecureHttpAllowed, type OwnerSession, withSession } from "../owner/session.js";
import { checkAgentKey, keyClaimOf } from "../owner/verify.js";
import { prepareSecretFile } from "../secret-file.js";

const USAGE = `Usage: keyhole agent <command> [options]

Manage agents: machine identities that each hold one narrow token.

Commands:
  create NAME [--grant a,b] [--expires 30d] [--cidr RANGES] [--token-file PATH]
                 create an agent, optionally granted secrets; prints its token once
  list           list agents
  show NAME      show an agent, its key check and its grants
  rotate NAME [--token-file PATH]
                 give the agent a new token; the old one stops working
  revoke NAME    cut the agent off and print its blast radius

Run \`keyhole agent <command> --help\` for the options of a command.
`;

const CREATE_USAGE = `Usage: keyhole agent create NAME [--grant a,b] [--expires 30d] [--cidr RANGES]
                           [--token-file PATH]

Create an agent. Its token is made on this machine; the server only learns its public
key (signed by the owner) and a verifier. The token is printed once to stdout, or, with
--token-file, written to PATH with mode 0600 (created or replaced atomically) and
nothing secret is printed.

Options:
  --grant a,b        grant these secrets (their current versions are wrapped for the agent)
  --expires DUR      the agent expires after DUR: 45s, 15m, 1h, 30d
  --cidr RANGES      accept the token only from these source ranges, IPv4 or IPv6,
                     comma-separated (10.0.0.0/8,2001:db8::/32; a bare address is one
                     host). From elsewhere a valid token is refused like a wrong one and
                     the audit log says likely_leak. Behind a reverse proxy, start the
                     server with --trusted-proxy so it sees the real client address
  --token-file PATH  write the token to PATH (mode 0600) instead of stdout
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help
`;

const LIST_USAGE = `Usage: keyhole agent list [--json] [--insecure-http]

List agents: name, id, status, number of grants, creation, expiry and last use.

Options:
  --json            print JSON
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

const SHOW_USAGE = `Usage: keyhole agent show NAME [--json] [--insecure-http]

Show an agent and its grants, and check that its public key carries the owner's
signature and is the key this machine gave it (exit 1 if not: the server may have
swapped it).

Options:
  --json            print JSON
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

const ROTATE_USAGE = `Usage: keyhole agent rotate NAME [--token-file PATH]

Give the agent a new token: a new key pair, every grant made from this machine that
has not expired re-wrapped for it (same expiry and hosts; expired grants are dropped).
The old token stops working when the server commits. Secrets themselves are not
rotated. The new token is printed once, or written to PATH (mode 0600).

Use --token-file: it survives an interruption. The new token is written to
PATH.pending before the server is asked, and moved over PATH once it has answered.
If the command is interrupted (killed, crash, lost connection), run the same command
again: when the server already has the new key, it only moves PATH.pending over PATH;
otherwise it discards PATH.pending and rotates. Either way exactly one token works
and it ends up in PATH. A token printed to stdout is lost if the command dies after
the server commits; then the old token is dead too, and only a new rotate helps.

Options:
  --token-file PATH  write the token to PATH (mode 0600) instead of stdout
  --insecure-http    allow plain http:// to a non-loopback address
  -h, --help         show this help
`;

const REVOKE_USAGE = `Usage: keyhole agent revoke NAME [--json] [--insecure-http]

Cut the agent off: its token stops working and its wraps are deleted. Prints the blast
radius: the secrets it could read, which it did read and when. Revoking cannot make the
agent forget what it read: rotate those secrets upstream (at their provider), then store
the new values with \`keyhole secret set\`.

Options:
  --json            print JSON
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

function connect(io: Io, insecure: boolean) {
  return { insecureHttp: insecureHttpAllowed(io, insecure) };
}

/**
 * Runs `make` (which creates or rotates an agent) and shows its token once: written to
 * `tokenFile` with mode 0600, or printed on stdout. The file's directory is probed first, so an
 * unwritable path fails before anything changes on the server.
 */
async function issueToken(
  io: Io,
  name: string,
  tokenFile: string | undefined,
  make: () => Promise<AgentWithToken>,
): Promise<AgentView> {
  const target = tokenFile === undefined ? undefined : resolve(io.cwd, tokenFile);
  if (target !== undefined) await (await prepareSecretFile(target, "")).abort();
  const { agent, token } = await make();
  try {
    if (target === undefined) {
      writeOut(io, `${token.encode()}\n`);
      note(
        io,
        "this token is shown once: store it now (e.g. in a file read via KEYHOLE_TOKEN_FILE)",
      );
      return agent;
    }
    try {
      await (await prepareSecretFile(target, `${token.encode()}\n`)).commit();
    } catch (error) {
      note(
        io,
        `keyhole: the token could not be written; run \`keyhole agent rotate ${name} --token-file PATH\``,
      );
      throw error;
    }
    note(io, `token written to ${target} (mode 0600)`);
    return agent;
  } finally {
    token.destroy();
  }
}

const create: Command = {
  usage: CREATE_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(
      io,
      CREATE_USAGE,
      argv,
      {
        ...CONNECT_OPTIONS,
        grant: { type: "string" },
        expires: { type: "string" },
        cidr: { type: "string" },
        "token-file": { type: "string" },
      },
      ["NAME"],
    );
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "agent name");
    const grant = stringOption(args, "grant");
    const secrets = grant === undefined ? [] : parseNameList(grant, "--grant");
    const expires = stringOption(args, "expires");
    const ttl = expires === undefined ? null : parseDuration(expires, "--expires");
    const cidrText = stringOption(args, "cidr");
    const allowedCidrs = cidrText === undefined ? [] : parseCidrList(cidrText, "--cidr");
    const tokenFile = stringOption(args, "token-file");
    await withSession(io, connect(io, flag(args, "insecure-http")), async (session) => {
      const expiresAt = ttl === null ? null : io.now() + ttl;
      const agent = await issueToken(io, name, tokenFile, () =>
        createAgent(session, { name, secrets, expiresAt, allowedCidrs }),
      );
      const granted = secrets.length === 0 ? "no secrets" : secrets.join(", ");
      note(io, `created agent ${name} (${agent.id}), granted ${granted}`);
    });
    return 0;
  },
};

const list: Command = {
  usage: LIST_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, LIST_USAGE, argv, { ...CONNECT_OPTIONS, ...JSON_OPTION });
    if (args === null) return 0;
    const agents = await withSession(io, connect(io, flag(args, "insecure-http")), listAgents);
    if (flag(args, "json")) {
      printJson(io, agents);
      return 0;
    }
    const now = io.now();
    const rows = agents.map((a) => [
      a.name,
      a.id,
      a.revoked_at !== null
        ? "revoked"
        : a.expires_at !== null && a.expires_at <= now
          ? "expired"
          : "active",
      String(a.grant_count),
      formatTime(a.created_at),
      formatTime(a.expires_at),
      formatTime(a.last_used_at),
    ]);
    const headers = ["name", "id", "status", "grants", "created", "expires", "last used"];
    writeOut(io, formatTable(headers, rows));
    return 0;
  },
};

const show: Command = {
  usage: SHOW_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, SHOW_USAGE, argv, { ...CONNECT_OPTIONS, ...JSON_OPTION }, [
      "NAME",
    ]);
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "agent name");
    const { agent, keyOk, signed, pin } = await withSession(
      io,
      connect(io, flag(args, "insecure-http")),
      async (session) => {
        const detail = await requireAgent(session, name);
        const signed = await checkAgentKey(session, keyClaimOf(detail)).then(
          () => true,
          () => false,
        );
        const pin = await pinnedKeyState(session, detail);
        return { agent: detail, keyOk: signed && pin !== "other", signed, pin };
      },
    );
    if (flag(args, "json")) {
      printJson(io, { ...agent, key_verified: keyOk, known_here: pin !== "unknown" });
    } else {
      const keyText = !signed
        ? "NOT SIGNED BY THIS OWNER"
        : pin === "other"
          ? "signed by this owner, but NOT the key this machine gave it (an older key?)"
          : pin === "unknown"
            ? "signed by this owner (agent not created from this machine)"
            : "signed by this owner";
      const lines = [
        ["name", agent.name],
        ["id", agent.id],
        ["key", keyText],
        ["created", formatTime(agent.created_at)],
        ["expires", formatTime(agent.expires_at)],
        ["from", agent.allowed_cidrs.length === 0 ? "anywhere" : agent.allowed_cidrs.join(",")],
        ["revoked", formatTime(agent.revoked_at)],
        ["last used", formatTime(agent.last_used_at)],
      ];
      writeOut(io, lines.map(([k, v]) => `${`${k}:`.padEnd(11)}${v}\n`).join(""));
      writeOut(io, "\n");
      const rows = agent.grants.map((g) => [
        g.secret_name,
        String(g.version),
        formatTime(g.not_after),
        g.allowed_hosts.length === 0 ? "any" : g.allowed_hosts.join(","),
        formatReadsLeft(g),
        formatTime(g.created_at),
      ]);
      const header = ["secret", "version", "expires", "hosts", "reads left", "granted"];
      writeOut(io, formatTable(header, rows));
    }
    if (!keyOk) {
      const problem = signed
        ? "is not the one this machine gave it"
        : "is not signed by this owner";
      note(io, `keyhole: agent ${name}'s key ${problem}; the server may have swapped it`);
      return 1;
    }
    return 0;
  },
};

/**
 * `agent rotate --token-file`: rotates (or finishes an interrupted rotate) into `target` through
 * `PATH.pending` (owner/rotate-to-file.ts). The directory is probed first, so an unwritable
 * path fails before anything changes on the server; a failure that leaves `PATH.pending` says
 * how to finish.
 */
async function rotateToFile(
  io: Io,
  session: OwnerSession,
  name: string,
  target: string,
): Promise<void> {
  await (await prepareSecretFile(target, "")).abort();
  let done: RotatedIntoFile;
  try {
    done = await rotateIntoFile(session, name, target);
  } catch (error) {
    // A refused pending file (config_error) says what to do itself; re-running would not help.
    const refused = isKeyholeError(error) && error.code === "config_error";
    if (!refused && (await exists(pendingTokenPath(target)))) {
      note(
        io,
        `keyhole: the rotate was interrupted; the new token is kept in ${pendingTokenPath(target)}. ` +
          `Run \`keyhole agent rotate ${name} --token-file ${target}\` again to finish: it keeps ` +
          "whichever token the server accepted",
      );
    }
    throw error;
  }
  note(io, `token written to ${target} (mode 0600)`);
  note(
    io,
    done.resumed
      ? `finished the interrupted rotate of agent ${name}; the old token is dead`
      : `rotated agent ${name} (${done.agent.grant_count} grants re-wrapped); the old token is dead`,
  );
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

const rotate: Command = {
  usage: ROTATE_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(
      io,
      ROTATE_USAGE,
      argv,
      { ...CONNECT_OPTIONS, "token-file": { type: "string" } },
      ["NAME"],
    );
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "agent name");
    const tokenFile = stringOption(args, "token-file");
    await withSession(io, connect(io, flag(args, "insecure-http")), async (session) => {
      if (tokenFile === undefined) {
        const agent = await issueToken(io, name, tokenFile, () => rotateAgent(session, name));
        note(
          io,
          `rotated agent ${name} (${agent.grant_count} grants re-wrapped); the old token is dead`,
        );
        return;
      }
      await rotateToFile(io, session, name, resolve(io.cwd, tokenFile));
    });
    return 0;
  },
};

/** The blast radius as text: what the agent could read, what it read, what to rotate. */
export function formatBlastRadius(name: string, response: AgentRevokeResponse): string {
  const radius = response.blast_radius;
  const read = radius.filter((e) => e.reads > 0);
  const unread = radius.filter((e) => e.reads === 0);
  let out = `revoked agent ${name} (${response.agent.id}): its token no longer works\n\n`;
  if (radius.length === 0) return `${out}blast radius: the agent could read no secrets.\n`;
  out += "blast radius:\n";
  out += formatTable(
    ["secret", "granted", "reads", "first read", "last read"],
    radius.map((e) => [
      e.secret,
      e.granted ? "yes" : "no",
      String(e.reads),
      formatTime(e.first_read_at),
      formatTime(e.last_read_at),
    ]),
  );
  out += "\n";
  if (read.length > 0) {
    out += `read by the agent: ${read.map((e) => e.secret).join(", ")}\n`;
    out += "  Revoking cannot make the agent forget these: rotate them upstream (at their\n";
    out += "  provider), then store the new values with `keyhole secret set NAME`.\n";
  } else {
    out += "read by the agent: none\n";
  }
  if (unread.length > 0) {
    out += `could read but never did: ${unread.map((e) => e.secret).join(", ")}\n`;
    out +=
      "  Rotate these too if the token may have leaked with a copy of the server's database.\n";
  }
  return out;
}

const revoke: Command = {
  usage: REVOKE_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, REVOKE_USAGE, argv, { ...CONNECT_OPTIONS, ...JSON_OPTION }, [
      "NAME",
    ]);
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "agent name");
    const response = await withSession(io, connect(io, flag(args, "insecure-http")), (session) =>
      revokeAgent(session, name),
    );
    if (flag(args, "json")) printJson(io, response);
    else writeOut(io, formatBlastRadius(name, response));
    return 0;
  },
};

/** `keyhole agent`. */
export const agentCommand: Command = {
  usage: USAGE,
  run: (argv, io) =>
    runSubcommand(argv, io, "agent", USAGE, { create, list, show, rotate, revoke }),
};
