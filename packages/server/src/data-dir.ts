/**
 * The data directory (0700): `keyhole.db`, and beside it, outside the database, the files that
 * must not travel with a database backup: `pepper` (the verifier HMAC key), `audit-key` (the
 * checkpoint signing seed), `revoked-tokens` (the append-only deny list a database restore
 * cannot roll back; see auth/revoked-tokens.ts) and, until the owner initialises the vault,
 * `bootstrap-code`. The key files are created once, atomically (written to a temporary file,
 * fsynced, then hard-linked into place, which fails rather than overwrite), with mode 0600; the
 * server refuses to start if one is readable by group or others, as ssh does with its keys.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
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

/** Creates the directory (0700) if needed and returns the paths in it. */
export function prepareDataDir(dir: string): DataDirFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!statSync(dir).isDirectory())
    throw new KeyholeError("config_error", "the data directory is not a directory");
  return {
    db: join(dir, "keyhole.db"),
    pepper: join(dir, "pepper"),
    auditKey: join(dir, "audit-key"),
    revokedTokens: join(dir, "revoked-tokens"),
    bootstrapCode: join(dir, "bootstrap-code"),
  };
}

/** Reads a key file of exactly `length` bytes, creating it with random bytes when missing. */
export function loadOrCreateKeyFile(path: string, length: number): Uint8Array {
  const bytes =
    readPrivateFile(path) ?? createPrivateFile(path, new Uint8Array(randomBytes(length)));
  if (bytes.length !== length) {
    throw new KeyholeError("config_error", `${path} is damaged (wrong length)`);
  }
  return bytes;
}

/** Reads a one-line text file, creating it with `make()` when missing. */
export function loadOrCreateTextFile(path: string, make: () => string): string {
  const bytes =
    readPrivateFile(path) ?? createPrivateFile(path, new TextEncoder().encode(`${make()}\n`));
  const text = new TextDecoder().decode(bytes).trim();
  if (text === "") throw new KeyholeError("config_error", `${path} is empty`);
  return text;
}

/** Deletes a file if it exists. */
export function removeFile(path: string): void {
  rmSync(path, { force: true });
}

function readPrivateFile(path: string): Uint8Array | null {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return null;
    throw error;
  }
  assertOwnerOnly(path, mode);
  return new Uint8Array(readFileSync(path));
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

function createPrivateFile(path: string, bytes: Uint8Array): Uint8Array {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temporary, path);
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as { code?: string }).code !== "EEXIST") throw error;
    bytes = new Uint8Array(readFileSync(path));
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
