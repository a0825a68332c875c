/**
 * One writer of `config.json` at a time. Owner commands read, change and rewrite the pin record;
 * two running at once (two terminals, a script) would otherwise each write back what it read and
 * lose the other's pins, after which the owner's own next command is refused as if the server
 * had made up an agent. `config.json.lock` holds the writer's pid; a lock left by a process that
 * died is taken over, and a live holder is waited for (up to 10 s). `withFileLock` is the same
 * lock on any path (`agent rotate --token-file PATH` holds `PATH.lock`).
 */
import { closeSync, constants, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KeyholeError } from "@keyhole/core";

const WAIT_MS = 10_000;

function holder(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function tryLock(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
      0o600,
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Runs `fn` holding the lock of the owner home `home`. */
export function withConfigLock<T>(home: string, fn: () => Promise<T>): Promise<T> {
  return withFileLock(join(home, "config.json.lock"), fn);
}

/** Runs `fn` holding the lock file `path` (created 0600 with this process's pid). */
export async function withFileLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  while (!tryLock(path)) {
    const pid = holder(path);
    // No pid yet: its writer is between create and write; give it a moment.
    if (pid !== null && !alive(pid)) rmSync(path, { force: true });
    else if (Date.now() > deadline)
      throw new KeyholeError(
        "config_error",
        `${path} is held by pid ${pid ?? "?"}; if no keyhole command is running, remove it`,
      );
    else await sleep(10 + Math.floor(Math.random() * 40));
  }
  try {
    return await fn();
  } finally {
    if (holder(path) === process.pid) rmSync(path, { force: true });
  }
}
