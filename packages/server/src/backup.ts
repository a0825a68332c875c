/**
 * Backup and restore of the database, the only part of a data directory that belongs in a backup
 * (SECURITY.md "Backups and revocation"). `pepper`, `audit-key` and `revoked-tokens` stay where
 * they are: a backup never holds what turns a stolen copy into working agent tokens, and a restore
 * never rolls back the revocation list, so an older database cannot bring a revoked token back.
 *
 * A backup is SQLite's online backup of `keyhole.db`, consistent while the server runs. A restore
 * needs the server stopped (the data-directory lock says whether it is), checks the copy, keeps
 * the replaced database beside it, and drops the old write-ahead log so none of it is replayed
 * onto the restored file.
 */
import { closeSync, constants, existsSync, fsyncSync, openSync, renameSync, rmSync } from "node:fs";
import { KeyholeError } from "@keyhole/core";
import Database from "better-sqlite3";
import { prepareDataDir, syncDirectory } from "./data-dir.js";
import { dataDirUser } from "./data-lock.js";

/** Opens a database file read-only and checks it is an intact Keyhole database. */
function checkDatabase(path: string): void {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch {
    throw new KeyholeError("config_error", `${path} is not a readable SQLite database`);
  }
  try {
    const result = db.pragma("integrity_check", { simple: true });
    if (result !== "ok") throw new KeyholeError("config_error", `${path} fails integrity_check`);
    const vault = db
      .prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'vault'")
      .get() as { n: number };
    if (vault.n !== 1) throw new KeyholeError("config_error", `${path} is not a Keyhole database`);
  } catch (error) {
    if (error instanceof KeyholeError) throw error;
    throw new KeyholeError("config_error", `${path} is not a Keyhole database`);
  } finally {
    db.close();
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a consistent copy of DATA_DIR/keyhole.db to `target` (a new file, mode 0600). */
export async function backupDatabase(dataDir: string, target: string): Promise<void> {
  const files = prepareDataDir(dataDir);
  if (!existsSync(files.db)) throw new KeyholeError("config_error", `no database in ${dataDir}`);
  if (existsSync(target)) throw new KeyholeError("config_error", `${target} already exists`);
  // Created empty and private first, so the copy is never readable by others, even briefly.
  closeSync(openSync(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600));
  const db = new Database(files.db, { readonly: true, fileMustExist: true });
  try {
    await db.backup(target);
    // A running server answers a write only after its fsync, but publishes the commit before
    // it: the copy may hold a commit the source has not yet made durable. Sync the source's
    // files now, so a power cut cannot leave the copy with entries the live log lost (two
    // chains with the same sequence numbers).
    for (const source of [`${files.db}-wal`, files.db]) {
      if (existsSync(source)) fsyncFile(source);
    }
  } catch (error) {
    rmSync(target, { force: true });
    throw error;
  } finally {
    db.close();
  }
  fsyncFile(target);
  checkDatabase(target);
}

/**
 * Replaces DATA_DIR/keyhole.db with `source`. Refused while a server uses the directory. The
 * replaced database (and its journals) is kept as `keyhole.db.before-restore-<ms>`; that name is
 * returned, or null when there was none.
 */
export async function restoreDatabase(
  dataDir: string,
  source: string,
  now = Date.now(),
): Promise<string | null> {
  const files = prepareDataDir(dataDir);
  const user = dataDirUser(dataDir);
  if (user !== null)
    throw new KeyholeError("config_error", `stop the server first (pid ${user} uses ${dataDir})`);
  checkDatabase(source);
  // Copied through SQLite into a new file beside the database, checked, then renamed into place:
  // a crash leaves either the old database or the restored one, never a mix.
  const incoming = `${files.db}.restoring`;
  rmSync(incoming, { force: true });
  const src = new Database(source, { readonly: true, fileMustExist: true });
  try {
    await src.backup(incoming);
  } finally {
    src.close();
  }
  fsyncFile(incoming);
  checkDatabase(incoming);
  const kept = existsSync(files.db) ? `${files.db}.before-restore-${now}` : null;
  // The old write-ahead log goes with the old database: replayed onto the restored file it
  // would corrupt it.
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    const path = `${files.db}${suffix}`;
    if (!existsSync(path)) continue;
    if (kept === null) rmSync(path, { force: true });
    else renameSync(path, `${kept}${suffix}`);
  }
  renameSync(incoming, files.db);
  syncDirectory(dataDir);
  return kept;
}
