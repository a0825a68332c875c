/**
 * The CLI's contact with the outside: environment, standard streams, prompts and output.
 * Commands receive an `Io` instead of touching `process`, so tests can drive them with in-memory
 * streams. Data goes to stdout, messages to stderr; secret values come from stdin or a muted
 * prompt, never from argv.
 */
import { openSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { ReadStream, WriteStream } from "node:tty";
import { KeyholeError } from "@keyhole/core";

/** A terminal to prompt on: raw-mode input and somewhere to write the question. */
export interface Terminal {
  readonly input: Readable & { setRawMode?(mode: boolean): unknown; isTTY?: boolean };
  readonly output: Writable;
  close(): void;
}

/** Everything a command may use from its process. */
export interface Io {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: Readable & { isTTY?: boolean };
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable;
  readonly cwd: string;
  now(): number;
  /** The terminal for a muted prompt, or null when there is none (piped, no controlling tty). */
  openTerminal(): Terminal | null;
  /** Resolves on SIGINT/SIGTERM (long-running commands: `server`, `dev`, `audit --follow`). */
  waitForSignal(): Promise<string>;
}

/** The real process. */
export function processIo(): Io {
  return {
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
    now: () => Date.now(),
    openTerminal: openProcessTerminal,
    waitForSignal: () =>
      new Promise((resolve) => {
        const onSignal = (signal: string) => {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          resolve(signal);
        };
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
      }),
  };
}

// When stdin carries data (a piped secret value), prompts still reach the user through
// /dev/tty, as ssh and gpg do. Without a controlling terminal there is nowhere to ask.
function openProcessTerminal(): Terminal | null {
  if (process.stdin.isTTY) {
    return { input: process.stdin, output: process.stderr, close: () => process.stdin.pause() };
  }
  if (process.platform === "win32") return null;
  let readFd: number;
  let writeFd: number;
  try {
    readFd = openSync("/dev/tty", "r");
    writeFd = openSync("/dev/tty", "w");
  } catch {
    return null;
  }
  const input = new ReadStream(readFd);
  const output = new WriteStream(writeFd);
  return {
    input,
    output,
    close: () => {
      input.destroy();
      output.destroy();
    },
  };
}

/** Writes data to stdout. */
export function writeOut(io: Io, text: string | Uint8Array): void {
  io.stdout.write(text);
}

/** Writes one message line to stderr. */
export function note(io: Io, line: string): void {
  io.stderr.write(`${line}\n`);
}

/** Prints a value as JSON on stdout (`--json`). */
export function printJson(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The most bytes a secret value may have: well inside the server's 256 KiB body limit. */
export const MAX_VALUE_BYTES = 64 * 1024;

/**
 * Reads all of a non-TTY stdin and strips exactly one trailing newline (`\n` or `\r\n`), so
 * `echo value | keyhole secret set NAME` stores `value`, while a value that really ends in
 * blank lines keeps all but the last.
 */
export async function readAllInput(stream: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > maxBytes + 2) {
      for (const c of chunks) c.fill(0);
      throw new KeyholeError("usage", `the value is larger than ${maxBytes} bytes`);
    }
    chunks.push(buffer);
  }
  const all = Buffer.concat(chunks);
  for (const c of chunks) c.fill(0);
  let end = all.length;
  if (end > 0 && all[end - 1] === 0x0a) {
    end--;
    if (end > 0 && all[end - 1] === 0x0d) end--;
  }
  if (end > maxBytes) {
    all.fill(0);
    throw new KeyholeError("usage", `the value is larger than ${maxBytes} bytes`);
  }
  return all.subarray(0, end);
}

/** The state of a muted line editor: what was typed so far and whether input ended. */
export interface HiddenLine {
  readonly text: string;
  readonly done: boolean;
  readonly cancelled: boolean;
}

/**
 * Applies raw terminal input to a muted line: Enter finishes, Backspace/DEL removes one
 * character, Ctrl-C cancels, Ctrl-D finishes (cancels on an empty line), Ctrl-U clears, other
 * control characters are ignored. Pure, so it is testable without a terminal.
 */
export function editHiddenLine(state: HiddenLine, chunk: string): HiddenLine {
  let text = state.text;
  for (const ch of chunk) {
    if (ch === "\r" || ch === "\n") return { text, done: true, cancelled: false };
    if (ch === "\u0003") return { text: "", done: true, cancelled: true };
    if (ch === "\u0004") return { text, done: true, cancelled: text === "" };
    if (ch === "\u007f" || ch === "\b") {
      text = Array.from(text).slice(0, -1).join("");
    } else if (ch === "\u0015") {
      text = "";
    } else if (!/\p{Cc}/u.test(ch)) {
      text += ch;
    }
  }
  return { text, done: false, cancelled: false };
}

/**
 * Asks a question on the terminal without echoing the answer. `what` names the answer for the
 * error when there is no terminal, and `envHint` says which variable to set instead.
 */
export async function promptHidden(
  io: Io,
  question: string,
  what: string,
  envHint: string,
): Promise<string> {
  const terminal = io.openTerminal();
  if (terminal === null) {
    throw new KeyholeError("config_error", `no terminal to ask for the ${what}; set ${envHint}`);
  }
  const { input, output } = terminal;
  terminal.output.write(question);
  const raw = typeof input.setRawMode === "function" && input.isTTY === true;
  if (raw) input.setRawMode?.(true);
  input.setEncoding("utf8");
  try {
    const result = await new Promise<HiddenLine>((resolve, reject) => {
      let state: HiddenLine = { text: "", done: false, cancelled: false };
      const onData = (chunk: string) => {
        state = editHiddenLine(state, chunk);
        if (state.done) finish();
      };
      const onEnd = () => {
        state = { ...state, done: true, cancelled: state.text === "" };
        finish();
      };
      const onError = () => {
        cleanup();
        reject(new KeyholeError("config_error", `could not read the ${what} from the terminal`));
      };
      const cleanup = () => {
        input.off("data", onData);
        input.off("end", onEnd);
        input.off("error", onError);
      };
      const finish = () => {
        cleanup();
        resolve(state);
      };
      input.on("data", onData);
      input.on("end", onEnd);
      input.on("error", onError);
      input.resume();
    });
    output.write("\n");
    if (result.cancelled) throw new KeyholeError("config_error", "cancelled");
    return result.text;
  } finally {
    if (raw) input.setRawMode?.(false);
    terminal.close();
  }
}

/**
 * Reads a secret value: from stdin when it is not a terminal (piped or redirected), otherwise
 * from a muted prompt. Never from argv.
 */
export async function readSecretValue(io: Io, name: string): Promise<Buffer> {
  if (io.stdin.isTTY !== true) return readAllInput(io.stdin, MAX_VALUE_BYTES);
  const text = await promptHidden(io, `Value for ${name}: `, "value", "a pipe on stdin");
  const value = Buffer.from(text, "utf8");
  if (value.length > MAX_VALUE_BYTES) {
    value.fill(0);
    throw new KeyholeError("usage", `the value is larger than ${MAX_VALUE_BYTES} bytes`);
  }
  return value;
}
