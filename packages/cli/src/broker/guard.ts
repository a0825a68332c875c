/**
 * The broker's start-up check: it holds an agent token, so it refuses to run when anything
 * could have loaded foreign code into its process or weakened its TLS. `NODE_OPTIONS=--require`
 * is the Node twin of the `.pth` hook that harvested credentials in March 2026.
 *
 * The environment is read from `/proc/self/environ` as well as `process.env`: the former is what
 * the kernel handed to the process at exec, so a hook that merely deletes `process.env.NODE_OPTIONS`
 * is still seen. Only a short list of harmless Node flags is accepted.
 *
 * This is detection, not a sandbox: code that already runs in this process and targets Keyhole
 * can patch `fs` to hide from it. What prevents injection is starting the broker with an
 * environment built from scratch, as `keyhole run` does (or `env -i`, or a systemd unit).
 */
import { readFileSync } from "node:fs";
import { KeyholeError } from "@keyhole/core";

// Flags that change limits, warnings or certificate stores but cannot load code.
const HARMLESS_NODE_FLAGS = new Set([
  "--max-old-space-size",
  "--max-semi-space-size",
  "--stack-size",
  "--no-warnings",
  "--no-deprecation",
  "--trace-warnings",
  "--trace-deprecation",
  "--enable-source-maps",
  "--unhandled-rejections",
  "--dns-result-order",
  "--use-bundled-ca",
  "--tls-min-v1.2",
  "--tls-min-v1.3",
]);

// Variables that load code into the process: shared libraries, OpenSSL providers and engines.
const CODE_VARIABLES = [
  "LD_PRELOAD",
  "LD_AUDIT",
  "LD_LIBRARY_PATH",
  "DYLD_INSERT_LIBRARIES",
  "DYLD_LIBRARY_PATH",
  "OPENSSL_CONF",
  "OPENSSL_MODULES",
  "OPENSSL_ENGINES",
];
// (SSL_CERT_FILE and SSL_CERT_DIR only count with --use-openssl-ca, which is not on the list.)

/** The environment the kernel gave this process at exec, or null where there is no /proc. */
export function readInitialEnviron(path = "/proc/self/environ"): Record<string, string> | null {
  let raw: string;
  try {
    raw = readFileSync(path, "latin1");
  } catch {
    return null;
  }
  const env: Record<string, string> = {};
  for (const entry of raw.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Splits NODE_OPTIONS as Node does: on spaces, with double quotes and backslash escapes. */
export function splitNodeOptions(text: string): string[] {
  const parts: string[] = [];
  let current = "";
  let inQuotes = false;
  let started = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === "\\" && inQuotes && i + 1 < text.length) {
      current += text[++i];
    } else if (ch === '"') {
      inQuotes = !inQuotes;
      started = true;
    } else if (ch === " " && !inQuotes) {
      if (started) parts.push(current);
      current = "";
      started = false;
    } else {
      current += ch;
      started = true;
    }
  }
  if (started) parts.push(current);
  return parts;
}

/** The unsafe arguments: any not on the list; named by the flag alone, never by its value. */
function unsafeFlags(args: readonly string[]): string[] {
  const unsafe = args.filter((arg) => !HARMLESS_NODE_FLAGS.has(arg.split("=", 1)[0] ?? ""));
  return unsafe.map((arg) => (arg.startsWith("-") ? (arg.split("=", 1)[0] ?? arg) : "a value"));
}

type Environments = readonly Readonly<Record<string, string | undefined>>[];

/**
 * Every way code could have been loaded into this process, as short sentences naming the
 * variable or flag (never its value: it may be a path the user considers private, or worse).
 */
export function injectionProblems(
  environments: Environments,
  execArgv: readonly string[],
): string[] {
  const problems = new Set<string>();
  for (const env of environments) {
    const unsafeOptions = unsafeFlags(splitNodeOptions(env.NODE_OPTIONS ?? ""));
    if (unsafeOptions.length > 0)
      problems.add(
        `NODE_OPTIONS holds ${[...new Set(unsafeOptions)].join(" ")} (code loading or debugging)`,
      );
    for (const name of CODE_VARIABLES)
      if ((env[name] ?? "") !== "") problems.add(`${name} is set (it loads code into the process)`);
  }
  const unsafeArgs = unsafeFlags(execArgv);
  if (unsafeArgs.length > 0)
    problems.add(`node was started with ${[...new Set(unsafeArgs)].join(" ")} (execArgv)`);
  return [...problems];
}

/** Every way the broker's TLS to the upstream could trust someone the default would not. */
export function trustProblems(environments: Environments): string[] {
  const problems = new Set<string>();
  for (const env of environments) {
    if (env.NODE_TLS_REJECT_UNAUTHORIZED === "0")
      problems.add("NODE_TLS_REJECT_UNAUTHORIZED=0 turns off TLS verification");
    if ((env.NODE_EXTRA_CA_CERTS ?? "") !== "")
      problems.add("NODE_EXTRA_CA_CERTS is set (it adds certificate authorities)");
  }
  return [...problems];
}

/** Throws `unsafe_environment` when this process may have been injected with code. */
export function assertNoCodeInjection(): void {
  const initial = readInitialEnviron();
  const environments = initial === null ? [process.env] : [initial, process.env];
  const problems = [
    ...injectionProblems(environments, process.execArgv),
    ...trustProblems(environments),
  ];
  if (problems.length > 0)
    throw new KeyholeError(
      "unsafe_environment",
      `refusing to hold an agent token: ${problems.join("; ")}. Start the broker without them ` +
        "(keyhole run does this for the broker it starts).",
    );
}
