/**
 * `keyhole secret set|get|list|history|rm`. Values come from stdin or a muted prompt, never
 * from argv (argv is visible in `ps` and shell history).
 */
import { zeroize } from "@keyhole/core";
import {
  CONNECT_OPTIONS,
  type Command,
  checkName,
  flag,
  JSON_OPTION,
  parseOrHelp,
  runSubcommand,
  usageError,
} from "../args.js";
import { formatSize, formatTable, formatTime } from "../format.js";
import { type Io, note, printJson, readSecretValue, writeOut } from "../io.js";
import {
  deleteSecret,
  listSecrets,
  putSecretValue,
  readSecret,
  secretHistory,
} from "../owner/secrets.js";
import { insecureHttpAllowed, withSession } from "../owner/session.js";

const USAGE = `Usage: keyhole secret <command> [options]

Store and read secrets. Values are read from stdin (piped or redirected) or from a
muted prompt, never from the command line.

Commands:
  set NAME        store a new version of NAME, wrapped for the owner and every granted agent
  get NAME        print the current value of NAME to stdout
  list            list secrets: name, version, size, grants
  history NAME    list the versions of NAME
  rm NAME         delete NAME with all its versions, wraps and grants

Run \`keyhole secret <command> --help\` for the options of a command.
`;

const SET_USAGE = `Usage: keyhole secret set NAME [--insecure-http]

Store a new version of NAME. The value is read from stdin when it is piped or redirected
(one trailing newline is removed), otherwise from a muted prompt; never from argv.
A fresh data key encrypts the value; it is wrapped for the owner and for every agent
granted NAME, after each agent's key is checked against the owner's signature.

Examples:
  printf %s "$VALUE" | keyhole secret set openai-api-key
  keyhole secret set openai-api-key < key.txt

Options:
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

const GET_USAGE = `Usage: keyhole secret get NAME [--insecure-http]

Print the current value of NAME to stdout (a newline is added only on a terminal).
The value is checked against the owner's signature, and a version lower than one
already seen is refused.

Options:
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

const LIST_USAGE = `Usage: keyhole secret list [--json] [--insecure-http]

List secrets: name, current version, size, number of granted agents, last update, and
whether rotation is recommended (a grant was removed or an agent revoked).

Options:
  --json            print JSON
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

const HISTORY_USAGE = `Usage: keyhole secret history NAME [--json] [--insecure-http]

List the versions of NAME with their creation time and size.

Options:
  --json            print JSON
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

const RM_USAGE = `Usage: keyhole secret rm NAME [--insecure-http]

Delete NAME: all its versions, wraps and grants. Agents lose access at once.

Options:
  --insecure-http   allow plain http:// to a non-loopback address
  -h, --help        show this help
`;

function connect(io: Io, args: { values: Record<string, unknown> }) {
  return { insecureHttp: insecureHttpAllowed(io, args.values["insecure-http"] === true) };
}

const set: Command = {
  usage: SET_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, SET_USAGE, argv, CONNECT_OPTIONS, ["NAME", "VALUE"], 1);
    if (args === null) return 0;
    if (args.positionals.length > 1) {
      throw usageError("values are read from stdin or a prompt, never from the command line");
    }
    const name = checkName(args.positionals[0] ?? "", "secret name");
    return withSession(io, connect(io, args), async (session) => {
      const value = await readSecretValue(io, name);
      if (value.length === 0) throw usageError("the value is empty");
      try {
        const result = await putSecretValue(session, name, value);
        const agents = result.agents === 1 ? "1 agent" : `${result.agents} agents`;
        note(io, `stored ${name} version ${result.version} (wrapped for the owner and ${agents})`);
        return 0;
      } finally {
        zeroize(value);
      }
    });
  },
};

const get: Command = {
  usage: GET_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, GET_USAGE, argv, CONNECT_OPTIONS, ["NAME"]);
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "secret name");
    return withSession(io, connect(io, args), async (session) => {
      const { value } = await readSecret(session, name);
      try {
        // Zeroed only once the stream is done with the bytes.
        await new Promise<void>((resolve) => io.stdout.write(value, () => resolve()));
        if (io.stdout.isTTY === true) writeOut(io, "\n");
      } finally {
        zeroize(value);
      }
      return 0;
    });
  },
};

const list: Command = {
  usage: LIST_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, LIST_USAGE, argv, { ...CONNECT_OPTIONS, ...JSON_OPTION });
    if (args === null) return 0;
    const secrets = await withSession(io, connect(io, args), (session) => listSecrets(session));
    if (flag(args, "json")) {
      printJson(io, secrets);
      return 0;
    }
    const rows = secrets.map((s) => [
      s.name,
      String(s.version),
      formatSize(s.size),
      String(s.grant_count),
      formatTime(s.updated_at),
      s.rotation_recommended ? "rotation recommended" : "",
    ]);
    writeOut(io, formatTable(["name", "version", "size", "agents", "updated", "note"], rows));
    return 0;
  },
};

const history: Command = {
  usage: HISTORY_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, HISTORY_USAGE, argv, { ...CONNECT_OPTIONS, ...JSON_OPTION }, [
      "NAME",
    ]);
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "secret name");
    const versions = await withSession(io, connect(io, args), (s) => secretHistory(s, name));
    if (flag(args, "json")) {
      printJson(io, versions);
      return 0;
    }
    const rows = versions.map((v) => [
      String(v.version),
      formatTime(v.created_at),
      formatSize(v.size),
    ]);
    writeOut(io, formatTable(["version", "created", "size"], rows));
    return 0;
  },
};

const rm: Command = {
  usage: RM_USAGE,
  async run(argv, io) {
    const args = parseOrHelp(io, RM_USAGE, argv, CONNECT_OPTIONS, ["NAME"]);
    if (args === null) return 0;
    const name = checkName(args.positionals[0] ?? "", "secret name");
    await withSession(io, connect(io, args), (session) => deleteSecret(session, name));
    note(io, `deleted ${name}`);
    return 0;
  },
};

/** `keyhole secret`. */
export const secretCommand: Command = {
  usage: USAGE,
  run: (argv, io) => runSubcommand(argv, io, "secret", USAGE, { set, get, list, history, rm }),
};
