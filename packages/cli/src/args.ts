/**
 * Argument parsing for every command: `node:util` `parseArgs` in strict mode, turned into one
 * short usage error (`KeyholeError("usage")`, exit 2) instead of Node's long messages, plus the
 * strict parsers for durations, lists and names that several commands share.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { canonicalCidrs, isValidName, KeyholeError } from "@keyhole/core";
import type { Io } from "./io.js";

/** The option table of one command, as `parseArgs` takes it. */
export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** What a command receives after parsing. */
export interface ParsedArgs {
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: string[];
}

/** Options every command accepts. */
export const HELP_OPTION: OptionSpec = { help: { type: "boolean", short: "h" } };

/** A usage error: printed as one line, exit code 2. */
export function usageError(message: string): KeyholeError {
  return new KeyholeError("usage", message);
}

/**
 * Parses `argv` strictly against `options` (plus `--help`). Positional arguments are allowed
 * but counted: fewer than `min` or more than `max` is a usage error naming what is missing. An
 * option not declared `multiple` may appear once: Node would keep the last silently, and
 * `--cidr A --cidr B` meaning only B is a limit the owner did not set.
 */
export function parseCommandArgs(
  argv: readonly string[],
  options: OptionSpec,
  positionalNames: readonly string[] = [],
  minPositionals: number = positionalNames.length,
): ParsedArgs & { help: boolean } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...HELP_OPTION, ...options },
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (error) {
    throw usageError(describeParseError(error));
  }
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name) && options[token.name]?.multiple !== true) {
      throw usageError(`option '${printable(token.rawName)}' given more than once`);
    }
    seen.add(token.name);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const help = values.help === true;
  if (help) return { values, positionals: parsed.positionals, help };
  const positionals = parsed.positionals;
  if (positionals.length < minPositionals) {
    throw usageError(`missing ${positionalNames[positionals.length] ?? "argument"}`);
  }
  if (positionals.length > positionalNames.length) {
    throw usageError(
      `unexpected argument '${printable(positionals[positionalNames.length] ?? "")}'`,
    );
  }
  return { values, positionals, help };
}

// Node's messages are long and suggest `--` tricks; one short line is clearer.
function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const code = (error as { code?: unknown }).code;
  const option = /'(-{1,2}[^'\s]*)/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${printable(option ?? "?")}'`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return message.includes("argument missing")
        ? `option '${printable(option ?? "?")}' needs a value`
        : `option '${printable(option ?? "?")}' does not take a value`;
    default:
      return "invalid arguments";
  }
}

/** Keeps user input echoed in an error short and free of control characters. */
function printable(text: string, max = 40): string {
  const clean = text.replace(/[\p{Cc}\p{Cf}]/gu, "?");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** A string option's value, or undefined. */
export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === "string" ? value : undefined;
}

/** A boolean option. */
export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** The longest duration accepted anywhere: ten years. */
const MAX_DURATION_MS = 3650 * UNIT_MS.d;

/**
 * Parses `45s`, `15m`, `1h`, `30d` into milliseconds. Strict: one positive integer without a
 * leading zero, one unit, nothing else (no spaces, no fractions, no combined units).
 */
export function parseDuration(text: string, option = "duration"): number {
  const match = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (!match) {
    throw usageError(`invalid ${option} '${printable(text)}' (use e.g. 45s, 15m, 1h, 30d)`);
  }
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms > MAX_DURATION_MS) throw usageError(`${option} is longer than 3650d`);
  return ms;
}

/** Parses a positive integer option such as `--limit` or `--port` within [min, max]. */
export function parseInteger(text: string, option: string, min: number, max: number): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) {
    throw usageError(`${option} must be a whole number`);
  }
  const n = Number(text);
  if (n < min || n > max) throw usageError(`${option} must be between ${min} and ${max}`);
  return n;
}

/** Splits `a,b,c` into names; empty items and duplicates are usage errors. */
export function parseNameList(text: string, option: string): string[] {
  const items = text.split(",").map((item) => item.trim());
  for (const item of items) checkName(item, option);
  if (new Set(items).size !== items.length) throw usageError(`${option} lists a name twice`);
  return items;
}

/** Splits `h1,h2` into raw host strings (canonicalised later by core's `canonicalHosts`). */
export function parseList(text: string, option: string): string[] {
  const items = text.split(",").map((item) => item.trim());
  if (items.some((item) => item === "")) throw usageError(`${option} has an empty item`);
  return items;
}

/**
 * Splits `10.0.0.0/8,2001:db8::/32` into canonical CIDR text (core `canonicalCidrs`: sorted,
 * unique; a bare address is one host). A bad range is a usage error naming it and the reason.
 */
export function parseCidrList(text: string, option: string): string[] {
  try {
    return canonicalCidrs(parseList(text, option));
  } catch (error) {
    throw usageError(`${option}: ${printable((error as Error).message, 200)}`);
  }
}

/** Checks a secret or agent name against the contract's pattern. */
export function checkName(name: string, what: string): string {
  if (!isValidName(name)) {
    throw usageError(
      `invalid ${what} '${printable(name)}' (1-128 of A-Z a-z 0-9 . _ -, starting with a letter or digit)`,
    );
  }
  return name;
}

/** Options of every command that talks to a server. */
export const CONNECT_OPTIONS: OptionSpec = { "insecure-http": { type: "boolean" } };

/** Options of every listing. */
export const JSON_OPTION: OptionSpec = { json: { type: "boolean" } };

/** One command or subcommand: its literal usage text and what it does. Returns the exit code. */
export interface Command {
  readonly usage: string;
  run(argv: readonly string[], io: Io): Promise<number>;
}

/**
 * Runs the subcommand named by `argv[0]`, or prints `usage` for `--help`/`-h`. A missing or
 * unknown subcommand is a usage error.
 */
export async function runSubcommand(
  argv: readonly string[],
  io: Io,
  group: string,
  usage: string,
  subcommands: Readonly<Record<string, Command>>,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) throw usageError(`missing command (see keyhole ${group} --help)`);
  if (name === "--help" || name === "-h") {
    io.stdout.write(usage);
    return 0;
  }
  const sub = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (sub === undefined) {
    throw usageError(`unknown command '${printable(name)}' (see keyhole ${group} --help)`);
  }
  return sub.run(rest, io);
}

/**
 * Parses a command's arguments; on `--help` prints its usage to stdout and returns null.
 */
export function parseOrHelp(
  io: Io,
  usage: string,
  argv: readonly string[],
  options: OptionSpec,
  positionalNames: readonly string[] = [],
  minPositionals: number = positionalNames.length,
): ParsedArgs | null {
  const parsed = parseCommandArgs(argv, options, positionalNames, minPositionals);
  if (parsed.help) {
    io.stdout.write(usage);
    return null;
  }
  return parsed;
}
