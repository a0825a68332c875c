/**
 * One server per data directory. A second server on the same SQLite file would work (WAL allows
 * it) but each keeps its own nonce cache, rate limits and revoked-token list in memory, which
 * breaks replay protection; and `keyhole restore` must never replace a database a server has
 * open. `DATA_DIR/server.lock` holds the live server's pid; a lock left by a crashed server (its
 * pid is gone) is taken over.
 */
import { closeSync, constants, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { KeyholeError } from "@keyhole/core";
import { openNoFollow } from "./data-dir.js";

/** A held lock; `release()` removes it (only if it is still ours). */
export interface DataDirLock {
  release(): void;
}

const LOCK_FILE = "server.lock";

function lockPath(dir: string): string {
  return join(dir, LOCK_FILE);
}

/** The pid in the lock file, if the file exists and holds one. */
function lockHolder(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, it is someone else's.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid of a live server using `dir`, or null. */
export function dataDirUser(dir: string): number | null {
  const pid = lockHolder(lockPath(dir));
  return pid !== null && pid !== process.pid && isAlive(pid) ? pid : null;
}

/** Takes the lock or throws `config_error` naming the live server's pid. */
export function lockDataDir(dir: string): DataDirLock {
  const path = lockPath(dir);
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openNoFollow(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = dataDirUser(dir);
      if (holder !== null)
        throw new KeyholeError(
          "config_error",
          `another keyhole server (pid ${holder}) uses the data directory ${dir}`,
        );
      // Left by a server that died: take it over.
      rmSync(path, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    return {
      release: () => {
        if (lockHolder(path) === process.pid) rmSync(path, { force: true });
      },
    };
  }
  throw new KeyholeError("config_error", `cannot take the lock ${path}`);
}
