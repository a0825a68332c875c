/**
 * An in-memory `Io` for tests: captured stdout/stderr, a given stdin, an optional fake terminal
 * fed with keystrokes, and a signal the test fires by hand.
 */
import { PassThrough, Readable, Writable } from "node:stream";
import type { Io, Terminal } from "../io.js";

/** An `Io` whose output the test can read. */
export interface MemoryIo extends Io {
  /** Everything written to stdout, as UTF-8. */
  out(): string;
  /** Everything written to stdout, as bytes. */
  outBytes(): Buffer;
  /** Everything written to stderr. */
  err(): string;
  /** What the fake terminal showed (questions, never the typed answers). */
  terminalOutput(): string;
  /** Resolves `waitForSignal`. */
  signal(name?: string): void;
}

function sink(chunks: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      // A copy: what was written has left the process, whatever the caller does to its buffer.
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
}

/** Options of `memoryIo`. */
export interface MemoryIoOptions {
  env?: Record<string, string | undefined>;
  /** stdin content (not a TTY); omitted = empty. */
  stdin?: string | Buffer;
  /** Pretend stdin is a terminal (then values come from the fake terminal). */
  stdinIsTTY?: boolean;
  /** Keystrokes for a fake terminal, one string per prompt; omitted = no terminal. */
  keystrokes?: string[];
  cwd?: string;
  now?: () => number;
}

/** A fresh in-memory Io. */
export function memoryIo(options: MemoryIoOptions = {}): MemoryIo {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const terminalOut: Buffer[] = [];
  const input = Buffer.isBuffer(options.stdin) ? options.stdin : Buffer.from(options.stdin ?? "");
  const stdin = Readable.from(input.length === 0 ? [] : [input]) as Readable & { isTTY?: boolean };
  if (options.stdinIsTTY === true) stdin.isTTY = true;
  const keystrokes = options.keystrokes === undefined ? null : [...options.keystrokes];
  let fire: (name: string) => void = () => undefined;
  const signalled = new Promise<string>((resolve) => {
    fire = resolve;
  });
  const out = sink(stdout) as Writable & { isTTY?: boolean };
  return {
    env: options.env ?? {},
    stdin,
    stdout: out,
    stderr: sink(stderr),
    cwd: options.cwd ?? process.cwd(),
    now: options.now ?? (() => Date.now()),
    openTerminal(): Terminal | null {
      if (keystrokes === null) return null;
      const next = keystrokes.shift();
      if (next === undefined) return null;
      const terminalInput = new PassThrough();
      // Typed after the prompt is shown, like a person would.
      setImmediate(() => terminalInput.write(next));
      return {
        input: terminalInput,
        output: sink(terminalOut),
        close: () => terminalInput.destroy(),
      };
    },
    waitForSignal: () => signalled,
    out: () => Buffer.concat(stdout).toString("utf8"),
    outBytes: () => Buffer.concat(stdout),
    err: () => Buffer.concat(stderr).toString("utf8"),
    terminalOutput: () => Buffer.concat(terminalOut).toString("utf8"),
    signal: (name = "SIGINT") => fire(name),
  };
}
