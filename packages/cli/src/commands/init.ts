/**
 * `keyhole init`: make the owner's keys in KEYHOLE_HOME and claim a fresh server with its
 * one-time bootstrap code.
 */
import { CONNECT_OPTIONS, type Command, flag, parseOrHelp, stringOption } from "../args.js";
import { type Io, note, promptHidden } from "../io.js";
import { parseServerAddress } from "../owner/client.js";
import { keyholeHome } from "../owner/config.js";
import { assertNoOwner, fetchUninitializedInfo, initOwner } from "../owner/init.js";
import { kdfParamsFor } from "../owner/key-file.js";
import { insecureHttpAllowed, readPassphrase, resolveAddr } from "../owner/session.js";

const USAGE = `Usage: keyhole init [--addr URL] [--bootstrap-code CODE] [--insecure-http]

Create the owner: an Ed25519 signing key and an X25519 key, made on this machine and
stored in $KEYHOLE_HOME/owner.key (default ~/.keyhole), encrypted under your passphrase
(Argon2id). Then claim the server with the one-time bootstrap code it printed at first
start, so nobody else can. Refuses to overwrite an existing owner key.

Options:
  --addr URL              server address (default $KEYHOLE_ADDR or http://127.0.0.1:8250)
  --bootstrap-code CODE   the server's bootstrap code (default $KEYHOLE_BOOTSTRAP_CODE,
                          else a prompt)
  --insecure-http         allow plain http:// to a non-loopback address
  -h, --help              show this help

Environment:
  KEYHOLE_HOME, KEYHOLE_ADDR, KEYHOLE_PASSPHRASE (else asked twice on the terminal),
  KEYHOLE_BOOTSTRAP_CODE, KEYHOLE_INSECURE_HTTP=1
`;

async function run(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, USAGE, argv, {
    ...CONNECT_OPTIONS,
    addr: { type: "string" },
    "bootstrap-code": { type: "string" },
  });
  if (args === null) return 0;
  const home = keyholeHome(io);
  const url = parseServerAddress(
    resolveAddr(io, stringOption(args, "addr")),
    insecureHttpAllowed(io, flag(args, "insecure-http")),
  );
  // Fail on an existing owner or a claimed server before asking for anything.
  await assertNoOwner(home);
  await fetchUninitializedInfo(url);
  const bootstrapCode = await readBootstrapCode(io, stringOption(args, "bootstrap-code"));
  const passphrase = await readPassphrase(io, true);
  const config = await initOwner({
    home,
    url,
    bootstrapCode,
    passphrase,
    kdfParams: kdfParamsFor(io.env),
  });
  note(io, `initialized vault ${config.vault_id} at ${config.addr}`);
  note(io, `owner key: ${home}/owner.key (keep your passphrase: it cannot be recovered)`);
  return 0;
}

async function readBootstrapCode(io: Io, fromFlag: string | undefined): Promise<string> {
  const code =
    fromFlag ??
    (io.env.KEYHOLE_BOOTSTRAP_CODE !== undefined && io.env.KEYHOLE_BOOTSTRAP_CODE !== ""
      ? io.env.KEYHOLE_BOOTSTRAP_CODE
      : await promptHidden(io, "Bootstrap code: ", "bootstrap code", "KEYHOLE_BOOTSTRAP_CODE"));
  return code.trim();
}

/** `keyhole init`. */
export const initCommand: Command = { usage: USAGE, run };
