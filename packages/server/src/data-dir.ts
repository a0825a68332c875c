/**
 * The data directory (0700): `keyhole.db`, and beside it, outside the database, the files that
 * must not travel with a database backup: `pepper` (the verifier HMAC key), `audit-key` (the
 * checkpoint signing seed), `revoked-tokens` (the append-only deny list a database restore
 * cannot roll back; see auth/revoked-tokens.ts) and, until the owner initialises the vault,
 * `bootstrap-code`. The key files are created once, atomically (written to a temporary file,
 * fsynced, then hard-linked into place, which fails rather than overwrite), with mode 0600.
 *
 * Nothing in the directory is trusted unless only this user could have put it there, as ssh
 * does with its keys: the server refuses to start (`config_error`) when the directory is not
 * owned by the user it runs as or is writable by group or others (another local user could
 * plant a `bootstrap-code` and claim a fresh vault, or swap a file for a symbolic link), when a
 * key file is not owned by that user, is readable by group or others, or is a symbolic link
 * (key files are opened with `O_NOFOLLOW`), and when `keyhole.db` or its journal files are
 * symbolic links or not owned by that user. On Windows, which has neither modes nor uids here,
 * these checks are skipped.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { KeyholeError } from "@keyhole/core";

/** The paths inside a data directory. */
export interface DataDirFiles {
  readonly db: string;
  readonly pepper: string;
  readonly auditKey: string;
  readonly revokedTokens: string;
  readonly bootstrapCode: string;
}

/**
 * The uid every file in the data directory must belong to: the user the server runs as, or
 * null where there are no uids (Windows). Functions here take it as a parameter so tests can
 * play another user.
 */
export function currentOwner(): number | null {
  return process.platform === "win32" || process.getuid === undefined ? null : process.getuid();
}

/** `O_NOFOLLOW` where the platform has it: opening a symbolic link then fails with `ELOOP`. */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/**
 * Creates the directory (0700) if needed, checks it and the database files in it, and returns
 * the paths in it.
 */
export function prepareDataDir(dir: string, owner = currentOwner()): DataDirFiles {
  makeDirectory(dir);
  const stat = statSync(dir);
  if (!stat.isDirectory()) {
    throw new KeyholeError("config_error", `the data directory ${dir} is not a directory`);
  }
  assertOwnedBy(dir, stat, owner);
  if (owner !== null && (stat.mode & 0o022) !== 0) {
    throw new KeyholeError(
      "config_error",
      `the data directory ${dir} must not be writable by group or others (chmod 700)`,
    );
  }
  const files = {
    db: join(dir, "keyhole.db"),
    pepper: join(dir, "pepper"),
    auditKey: join(dir, "audit-key"),
    revokedTokens: join(dir, "revoked-tokens"),
    bootstrapCode: join(dir, "bootstrap-code"),
  };
  // SQLite opens the database (and its journals) following links: refuse them up front.
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    checkDatabaseFile(`${files.db}${suffix}`, owner);
  }
  return files;
}

/** Reads a key file of exactly `length` bytes, creating it with random bytes when missing. */
export function loadOrCreateKeyFile(
  path: string,
  length: number,
  owner = currentOwner(),
): Uint8Array {
  const bytes =
    readPrivateFile(path, owner) ??
    createPrivateFile(path, new Uint8Array(randomBytes(length)), owner);
  return checkKeyLength(path, bytes, length);
}

/**
 * Reads a key file of exactly `length` bytes that must already exist, with the checks of the
 * data directory's own key files (no symbolic link, a regular file owned by `owner`, mode 0600
 * or stricter). For keys made elsewhere and shared by several servers (`--pepper-file`): a
 * missing one is a `config_error`, never created, since a new random key on one server would
 * silently differ from the others'.
 */
export function readKeyFile(path: string, length: number, owner = currentOwner()): Uint8Array {
  const bytes = readPrivateFile(path, owner);
  if (bytes === null) throw new KeyholeError("config_error", `${path} does not exist`);
  return checkKeyLength(path, bytes, length);
}

function checkKeyLength(path: string, bytes: Uint8Array, length: number): Uint8Array {
  if (bytes.length !== length) {
    throw new KeyholeError(
      "config_error",
      `${path} is damaged (wrong length: a key file holds exactly ${length} raw bytes)`,
    );
  }
  return bytes;
}

/** Reads a one-line text file, creating it with `make()` when missing. */
export function loadOrCreateTextFile(
  path: string,
  make: () => string,
  owner = currentOwner(),
): string {
  const bytes =
    readPrivateFile(path, owner) ??
    createPrivateFile(path, new TextEncoder().encode(`${make()}\n`), owner);
  const text = new TextDecoder().decode(bytes).trim();
  if (text === "") throw new KeyholeError("config_error", `${path} is empty`);
  return text;
}

/** Deletes a file if it exists. */
export function removeFile(path: string): void {
  rmSync(path, { force: true });
}

/**
 * Opens a private file without following a symbolic link (`config_error` if it is one), with
 * `openSync` flags (numeric). Other errors, `ENOENT` included, are thrown as they are.
 */
export function openNoFollow(path: string, flags: number, mode?: number): number {
  try {
    return openSync(path, flags | NOFOLLOW, mode);
  } catch (error) {
    if ((error as { code?: string }).code === "ELOOP") {
      throw new KeyholeError("config_error", `${path} is a symbolic link; refusing to use it`);
    }
    throw error;
  }
}

/**
 * Refuses an open private file (`config_error`) that is not a regular file, is not owned by
 * `owner` (null: no uids to check), or lets group or others in.
 */
export function assertPrivateFile(path: string, stat: Stats, owner: number | null): void {
  if (!stat.isFile()) throw new KeyholeError("config_error", `${path} is not a regular file`);
  assertOwnedBy(path, stat, owner);
  assertOwnerOnly(path, stat.mode);
}

/** Refuses a file whose `mode` lets group or others in (`config_error`). */
export function assertOwnerOnly(path: string, mode: number): void {
  if (process.platform !== "win32" && (mode & 0o077) !== 0) {
    throw new KeyholeError(
      "config_error",
      `${path} must be readable by its owner only (chmod 600)`,
    );
  }
}

/**
 * `mkdir -p` with mode 0700. Node's recursive mkdir reports `ENOENT` when the parent exists but
 * is read-only; a plain mkdir then gives the real reason (`EROFS`, `ENOSPC`), which start-up
 * turns into a clear message.
 */
function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOENT") throw error;
    mkdirSync(dir, { mode: 0o700 });
  }
}

function assertOwnedBy(path: string, stat: Stats, owner: number | null): void {
  if (owner !== null && stat.uid !== owner) {
    throw new KeyholeError(
      "config_error",
      `${path} is owned by uid ${stat.uid}, not by the user the server runs as (uid ${owner})`,
    );
  }
}

/** Refuses a database file that is a symbolic link, not a regular file, or someone else's. */
function checkDatabaseFile(path: string, owner: number | null): void {
  let stat: Stats;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return;
    throw error;
  }
  if (stat.isSymbolicLink()) {
    throw new KeyholeError("config_error", `${path} is a symbolic link; refusing to use it`);
  }
  if (!stat.isFile()) throw new KeyholeError("config_error", `${path} is not a regular file`);
  assertOwnedBy(path, stat, owner);
}

/** The file's bytes after the checks of `assertPrivateFile`, or null when it does not exist. */
function readPrivateFile(path: string, owner: number | null): Uint8Array | null {
  let fd: number;
  try {
    fd = openNoFollow(path, constants.O_RDONLY);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return null;
    throw error;
  }
  try {
    // fstat of the descriptor just opened: what is checked is what is read.
    assertPrivateFile(path, fstatSync(fd), owner);
    return new Uint8Array(readFileSync(fd));
  } finally {
    closeSync(fd);
  }
}

function createPrivateFile(path: string, bytes: Uint8Array, owner: number | null): Uint8Array {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } catch (error) {
    // A full disk: leave no empty temporary behind for every failed start.
    closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    linkSync(temporary, path);
  } catch (error) {
    // Another process created it first: use theirs, after the same checks.
    if ((error as { code?: string }).code !== "EEXIST") throw error;
    const theirs = readPrivateFile(path, owner);
    if (theirs === null) throw error;
    bytes = theirs;
  } finally {
    rmSync(temporary, { force: true });
  }
  syncDirectory(dirname(path));
  return bytes;
}

/** fsyncs a directory, so a file just created in it survives a crash. */
export function syncDirectory(dir: string): void {
  if (process.platform === "win32") return;
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
