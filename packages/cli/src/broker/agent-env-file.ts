/**
 * The agents' environment file of a long-lived broker (`keyhole broker --agent-env FILE`): one
 * `NAME=value` line per variable (base URLs and capabilities). It is written to a fresh temporary
 * file and renamed into place, so nobody who opened the old file, and no symbolic link planted
 * at the path, sees the new capabilities; `keyhole run --attach FILE` reads it back, strictly.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { KeyholeError } from "@keyhole/core";

const LINE = /^([A-Z_][A-Z0-9_]*)=([^\0\r\n]*)$/;
// Names a broker never sets and a tampered file could use to run code in, or redirect, the agent.
const FORBIDDEN =
  /^(KEYHOLE_|NODE_|LD_|DYLD_|PYTHON|OPENSSL_|SSL_)|^(PATH|HOME|SHELL|USER|BASH_ENV|ENV)$/;
const MAX_BYTES = 64 * 1024;

/** Renders the variables as `NAME=value` lines. */
export function formatAgentEnv(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => `${name}=${value}\n`)
    .join("");
}

/** Writes the file with mode 0600, atomically. */
export function writeAgentEnvFile(path: string, env: Readonly<Record<string, string>>): void {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  // "wx": created here and now (O_EXCL), so it cannot be a planted file or link.
  const fd = openSync(temporary, "wx", 0o600);
  try {
    writeSync(fd, formatAgentEnv(env));
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temporary);
    throw error;
  }
  closeSync(fd);
  renameSync(temporary, path);
}

/** Reads and checks an agents' environment file; `KEYHOLE_*`, loader and path names are refused. */
export function readAgentEnvFile(path: string): Record<string, string> {
  let text: string;
  try {
    // A regular file of bounded size, checked before reading (a FIFO or /dev/zero would hang).
    const fd = openSync(path, "r");
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile() || stat.size > MAX_BYTES) throw new Error("not a small regular file");
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    throw new KeyholeError("config_error", `cannot read the broker's environment file ${path}`);
  }
  const env: Record<string, string> = {};
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "" || line.startsWith("#")) continue;
    const match = LINE.exec(line);
    const name = match?.[1];
    if (match === null || name === undefined || FORBIDDEN.test(name) || name in env)
      throw new KeyholeError("config_error", `${path}: line ${i + 1} is not NAME=value`);
    env[name] = match[2] ?? "";
  }
  if (Object.keys(env).length === 0)
    throw new KeyholeError("config_error", `${path} holds no variables`);
  return env;
}
