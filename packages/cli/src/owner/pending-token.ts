/**
 * `PATH.pending`: where `agent rotate --token-file PATH` keeps the new token from before the
 * rotate request is sent until its outcome is known (SECURITY-TESTS #17). The server retires the
 * old token in the same transaction that registers the new one, so once the request may have
 * reached the server, the only copy of the token that may now be the working one must already be
 * on disk: a kill after the commit then leaves it in `PATH.pending`, and running the same command
 * again moves it over PATH (`promotePendingToken`) instead of rotating again.
 *
 * Each step is atomic and durable: the file is written to a temporary name, fsynced and renamed
 * (secret-file.ts), and every rename or removal is followed by an fsync of the directory, so a
 * power cut never leaves a half-written token nor undoes a rename the next step relied on.
 */
import { constants } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { type AgentToken, KeyholeError, parseToken } from "@keyhole/core";
import { prepareSecretFile } from "../secret-file.js";

/** The side file of `target`. */
export function pendingTokenPath(target: string): string {
  return `${target}.pending`;
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : "error";
}

/** Makes the directory entry changes in `path`'s directory durable. */
async function syncDirectory(path: string): Promise<void> {
  const handle = await open(dirname(path), "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `token` to `PATH.pending` (mode 0600, replaced atomically, durable on return). */
export async function writePendingToken(target: string, token: AgentToken): Promise<void> {
  const path = pendingTokenPath(target);
  await (await prepareSecretFile(path, `${token.encode()}\n`)).commit();
  await syncDirectory(path);
}

/** A token file is about 100 bytes; anything much larger was not written by `agent rotate`. */
const MAX_PENDING_BYTES = 1024;

/**
 * The token in `PATH.pending`, or null when there is none. Read the way `agent rotate` wrote it
 * or not at all: never through a symbolic link, never from a FIFO or device (which could hang or
 * redirect the read), only a regular file of this user's with no group or other access. A file
 * that fails any of this, or is not a token, was not written by `agent rotate` (which writes
 * atomically): `config_error`, left for the owner to look at rather than deleted.
 */
export async function readPendingToken(target: string): Promise<AgentToken | null> {
  const path = pendingTokenPath(target);
  const refuse = (why: string): never => {
    throw new KeyholeError(
      "config_error",
      `${path} ${why}; it was not written by \`agent rotate\`: move it away and run the command again`,
    );
  };
  let text: string;
  try {
    const handle = await open(
      path,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    try {
      const info = await handle.stat();
      if (!info.isFile()) refuse("is not a regular file");
      if (typeof process.getuid === "function" && info.uid !== process.getuid()) {
        refuse("belongs to another user");
      }
      if ((info.mode & 0o077) !== 0) refuse("is readable or writable by others");
      if (info.size > MAX_PENDING_BYTES) refuse("is too large to be a token");
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ELOOP") refuse("is a symbolic link");
    if (error instanceof KeyholeError) throw error;
    throw new KeyholeError("config_error", `cannot read ${path} (${describe(error)})`);
  }
  try {
    return parseToken(text.trim());
  } catch {
    throw new KeyholeError(
      "config_error",
      `${path} does not hold an agent token; move it away and run the command again`,
    );
  }
}

/** Moves `PATH.pending` over PATH (atomically, durable on return). */
export async function promotePendingToken(target: string): Promise<void> {
  try {
    await rename(pendingTokenPath(target), target);
  } catch (error) {
    throw new KeyholeError("config_error", `cannot write ${target} (${describe(error)})`);
  }
  await syncDirectory(target);
}

/** Removes `PATH.pending` (a token the server never accepted), durably. */
export async function discardPendingToken(target: string): Promise<void> {
  await rm(pendingTokenPath(target), { force: true });
  await syncDirectory(target);
}
