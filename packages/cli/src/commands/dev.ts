/**
 * `keyhole dev`: a whole local Keyhole in one command. Starts the server in this process, makes
 * an owner, a demo secret and a demo agent granted it (token in a 0600 file), prints what to
 * paste into another terminal, and serves until Ctrl-C. Re-running reuses the directory and
 * re-creates only what is missing.
 */
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { encodeBase64url, KeyholeError } from "@keyhole/core";
import type { RunningServer } from "@keyhole/server";
import { type Command, parseInteger, parseOrHelp, stringOption } from "../args.js";
import { type Io, note, writeOut } from "../io.js";
import { createAgent, getAgent, rotateAgent } from "../owner/agents.js";
import { parseServerAddress } from "../owner/client.js";
import { readConfig, updateConfig } from "../owner/config.js";
import { addGrant } from "../owner/grants.js";
import { initOwner } from "../owner/init.js";
import { ensurePrivateDir, kdfParamsFor, keyFileExists } from "../owner/key-file.js";
import { getSecretView, putSecretValue } from "../owner/secrets.js";
import { type OwnerSession, withSession } from "../owner/session.js";
import { prepareSecretFile } from "../secret-file.js";
import { startServerForCli } from "./server.js";

const USAGE = `Usage: keyhole dev [--port 8250] [--dir .keyhole-dev]

Run a complete local Keyhole for trying it out: a server on 127.0.0.1 with its data in
DIR/data, an owner in DIR/owner (passphrase from $KEYHOLE_PASSPHRASE, or generated and
shown once), a demo secret \`demo-api-key\` with a random value, and an agent
\`demo-agent\` granted it, whose token is written to DIR/demo-agent.token (mode 0600).
Prints the lines to paste into another terminal, then serves until Ctrl-C.
Running it again reuses DIR and re-creates only what is missing.

Options:
  --port PORT   port on 127.0.0.1, 0 for any free port (default 8250)
  --dir DIR     where everything lives (default .keyhole-dev)
  -h, --help    show this help
`;

const DEMO_SECRET = "demo-api-key";
const DEMO_AGENT = "demo-agent";

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The bootstrap code of a server not yet claimed: from this start, or the file it left. */
async function bootstrapCode(server: RunningServer, dataDir: string): Promise<string | null> {
  if (server.bootstrapCode !== null) return server.bootstrapCode;
  try {
    return (await readFile(join(dataDir, "bootstrap-code"), "utf8")).trim();
  } catch {
    return null;
  }
}

async function ensureDemo(session: OwnerSession, tokenPath: string): Promise<void> {
  const io = session.io;
  if ((await getSecretView(session, DEMO_SECRET)) === null) {
    // A random value nobody sees: the demo proves the fetch, not the value.
    const value = Buffer.from(encodeBase64url(randomBytes(32)), "utf8");
    try {
      await putSecretValue(session, DEMO_SECRET, value);
    } finally {
      value.fill(0);
    }
    note(io, `stored demo secret ${DEMO_SECRET}`);
  }
  const agent = await getAgent(session, DEMO_AGENT);
  if (agent !== null && agent.revoked_at !== null) {
    throw new KeyholeError(
      "conflict",
      `${DEMO_AGENT} is revoked; delete the dev directory to start over`,
    );
  }
  const hasToken = await exists(tokenPath);
  if (agent !== null && !agent.grants.some((g) => g.secret_name === DEMO_SECRET)) {
    await addGrant(session, DEMO_AGENT, DEMO_SECRET, { notAfter: 0, allowedHosts: [], maxUses: 0 });
    note(io, `granted ${DEMO_SECRET} to ${DEMO_AGENT}`);
  }
  if (agent !== null && hasToken) return;
  const { token } =
    agent === null
      ? await createAgent(session, { name: DEMO_AGENT, secrets: [DEMO_SECRET], expiresAt: null })
      : await rotateAgent(session, DEMO_AGENT);
  try {
    await (await prepareSecretFile(tokenPath, `${token.encode()}\n`)).commit();
  } finally {
    token.destroy();
  }
  note(
    io,
    `${agent === null ? "created" : "rotated"} ${DEMO_AGENT}; token in ${tokenPath} (mode 0600)`,
  );
}

/** The block to paste: the SDK one-liner as the demo agent, then owner commands. */
export function pasteBlock(fields: {
  url: string;
  vaultId: string;
  dir: string;
  tokenPath: string;
  ownerHome: string;
  generatedPassphrase: string | null;
}): string {
  const snippet =
    'node --input-type=module -e \'import { Vault } from "@keyhole/sdk"; ' +
    `console.log((await new Vault().get("${DEMO_SECRET}")).length, "bytes fetched")'`;
  const passphrase =
    fields.generatedPassphrase === null
      ? "# KEYHOLE_PASSPHRASE: the one this dev vault was created with"
      : `export KEYHOLE_PASSPHRASE='${fields.generatedPassphrase}'   # shown once: keep it`;
  return [
    `# Keyhole dev: ${fields.url} (vault ${fields.vaultId}), everything in ${fields.dir}`,
    "# In another terminal, from the repository root, fetch the demo secret as the demo agent:",
    `export KEYHOLE_ADDR=${fields.url}`,
    `export KEYHOLE_TOKEN_FILE=${fields.tokenPath}`,
    snippet,
    "",
    "# Then try the owner commands:",
    `export KEYHOLE_HOME=${fields.ownerHome}`,
    passphrase,
    "npx keyhole secret list",
    `npx keyhole agent show ${DEMO_AGENT}`,
    "npx keyhole audit",
    "npx keyhole audit verify",
    "",
    "# And an agent that never holds the key: store a real one (pasted at the muted prompt),",
    "# allow its host, and run the agent through the broker. The agent can read the environment",
    "# of keyhole run, so no passphrase or key may be left in it (keyhole run checks):",
    "npx keyhole secret set openai-api-key",
    `npx keyhole grant add ${DEMO_AGENT} openai-api-key --hosts api.openai.com`,
    "unset KEYHOLE_PASSPHRASE OPENAI_API_KEY",
    `npx keyhole run --route openai --token-file ${fields.tokenPath} -- python agent.py`,
    "",
  ].join("\n");
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, USAGE, argv, { port: { type: "string" }, dir: { type: "string" } });
  if (args === null) return 0;
  const portText = stringOption(args, "port");
  const port = portText === undefined ? 8250 : parseInteger(portText, "--port", 0, 65535);
  const dir = resolve(io.cwd, stringOption(args, "dir") ?? ".keyhole-dev");
  const dataDir = join(dir, "data");
  const ownerHome = join(dir, "owner");
  const tokenPath = join(dir, `${DEMO_AGENT}.token`);
  await ensurePrivateDir(dir);
  const server = await startServerForCli({
    dataDir,
    host: "127.0.0.1",
    port,
    logLevel: "error",
    log: (line) => note(io, line),
  });
  try {
    const envPassphrase = io.env.KEYHOLE_PASSPHRASE;
    let passphrase = envPassphrase !== undefined && envPassphrase !== "" ? envPassphrase : null;
    let generated: string | null = null;
    if (!(await keyFileExists(ownerHome))) {
      const code = await bootstrapCode(server, dataDir);
      if (code === null) {
        throw new KeyholeError(
          "config_error",
          `the dev server already has an owner but ${ownerHome} is missing; delete ${dir} to start over`,
        );
      }
      if (passphrase === null) {
        generated = encodeBase64url(randomBytes(18));
        passphrase = generated;
      }
      await initOwner({
        home: ownerHome,
        url: parseServerAddress(server.url, false),
        bootstrapCode: code,
        passphrase,
        kdfParams: kdfParamsFor(io.env),
      });
      note(io, `created the owner in ${ownerHome}`);
    } else {
      const config = await readConfig(ownerHome);
      if (config.vault_id !== server.vaultId) {
        throw new KeyholeError(
          "config_error",
          `${ownerHome} belongs to another vault; delete ${dir}`,
        );
      }
      if (config.addr !== server.url) {
        await updateConfig(ownerHome, (c) => ({ ...c, addr: server.url }));
      }
    }
    const ownerIo: Io = {
      ...io,
      env: { ...io.env, KEYHOLE_HOME: ownerHome, KEYHOLE_ADDR: server.url },
    };
    // Without the passphrase nothing can be checked on the server; a present token file is
    // taken to mean the demo is complete.
    if (passphrase !== null) {
      const withPassphrase: Io = {
        ...ownerIo,
        env: { ...ownerIo.env, KEYHOLE_PASSPHRASE: passphrase },
      };
      await withSession(withPassphrase, { insecureHttp: false }, (s) => ensureDemo(s, tokenPath));
    } else if (!(await exists(tokenPath))) {
      throw new KeyholeError(
        "config_error",
        `${tokenPath} is missing; set KEYHOLE_PASSPHRASE to the dev owner's passphrase to re-create it`,
      );
    }
    writeOut(
      io,
      pasteBlock({
        url: server.url,
        vaultId: server.vaultId,
        dir,
        tokenPath,
        ownerHome,
        generatedPassphrase: generated,
      }),
    );
    note(io, "serving; Ctrl-C to stop");
    const signal = await io.waitForSignal();
    note(io, `${signal}: shutting down`);
  } finally {
    await server.close();
  }
  return 0;
}

/** `keyhole dev`. */
export const devCommand: Command = { usage: USAGE, run };
