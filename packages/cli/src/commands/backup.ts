/**
 * `keyhole backup FILE` and `keyhole restore FILE`: the database of a server's data directory,
 * and nothing else (no pepper, no audit key, no revocation list). Run on the server's machine.
 */
import { join, resolve } from "node:path";
import { type Command, parseOrHelp, stringOption } from "../args.js";
import { type Io, note } from "../io.js";
import { keyholeHome } from "../owner/config.js";

const BACKUP_USAGE = `Usage: keyhole backup [--data-dir DIR] FILE

Write a consistent copy of the server's database to FILE (a new file, mode 0600), while the
server runs. The copy holds ciphertexts, public keys and HMACs, never a value or a token, and
not the pepper, audit key or revocation list in DIR: keep those with the server, not in backups.

Options:
  --data-dir DIR     the server's data directory (default $KEYHOLE_HOME/server-data)
  -h, --help         show this help
`;

const RESTORE_USAGE = `Usage: keyhole restore [--data-dir DIR] FILE

Replace the server's database with the backup FILE. The server must be stopped. The replaced
database is kept beside it (keyhole.db.before-restore-<ms>). DIR/revoked-tokens is not touched:
an agent revoked or rotated after the backup stays revoked (the server logs any such agent at
start; revoke or rotate it again). Everything else written after the backup is gone.

Options:
  --data-dir DIR     the server's data directory (default $KEYHOLE_HOME/server-data)
  -h, --help         show this help
`;

function dataDir(io: Io, option: string | undefined): string {
  return option === undefined ? join(keyholeHome(io), "server-data") : resolve(io.cwd, option);
}

async function backup(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, BACKUP_USAGE, argv, { "data-dir": { type: "string" } }, ["FILE"]);
  if (args === null) return 0;
  const dir = dataDir(io, stringOption(args, "data-dir"));
  const target = resolve(io.cwd, args.positionals[0] as string);
  const { backupDatabase } = await import("@keyhole/server");
  await backupDatabase(dir, target);
  note(io, `backed up ${join(dir, "keyhole.db")} to ${target}`);
  return 0;
}

async function restore(argv: readonly string[], io: Io): Promise<number> {
  const args = parseOrHelp(io, RESTORE_USAGE, argv, { "data-dir": { type: "string" } }, ["FILE"]);
  if (args === null) return 0;
  const dir = dataDir(io, stringOption(args, "data-dir"));
  const source = resolve(io.cwd, args.positionals[0] as string);
  const { restoreDatabase } = await import("@keyhole/server");
  const kept = await restoreDatabase(dir, source);
  note(io, `restored ${source} into ${dir}`);
  if (kept !== null) note(io, `the replaced database is kept as ${kept}`);
  return 0;
}

/** `keyhole backup`. */
export const backupCommand: Command = { usage: BACKUP_USAGE, run: backup };
/** `keyhole restore`. */
export const restoreCommand: Command = { usage: RESTORE_USAGE, run: restore };
