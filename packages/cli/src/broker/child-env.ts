/**
 * The environment `keyhole run` gives its child. By default it is built from scratch: a few
 * variables programs need to behave (PATH, HOME, locale, terminal), what `--env` asks for, and the
 * routes' variables (broker URL, capability). With `--inherit-env` it is the parent's environment
 * minus everything that could be a credential Keyhole now manages: every `KEYHOLE_*` variable,
 * every variable a route sets, and the variable conventionally named after each routed secret.
 */
import { usageError } from "../args.js";
import { isCapabilityShaped } from "./capability.js";
import { CAPABILITY_PLACEHOLDER, type Route, secretEnvName } from "./routes.js";

// Not secrets, and programs misbehave without them.
const BASE_NAMES = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "TERM",
  "COLORTERM",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What the child environment is made of. */
export interface ChildEnvInput {
  readonly parent: Readonly<Record<string, string | undefined>>;
  readonly inherit: boolean;
  /** `--env` arguments: `NAME` (copy from the parent) or `NAME=VALUE`. */
  readonly extra: readonly string[];
  readonly routes: readonly Route[];
  /** The routes' variables, placeholders already filled in. */
  readonly routeVars: Readonly<Record<string, string>>;
}

/** Names the child must never inherit. */
export function strippedNames(routes: readonly Route[]): Set<string> {
  const names = new Set<string>();
  for (const route of routes) {
    for (const name of Object.keys(route.env)) names.add(name);
    names.add(secretEnvName(route.secret));
  }
  return names;
}

// What Keyhole itself reads as a credential from the environment.
const KEYHOLE_CREDENTIALS = ["KEYHOLE_TOKEN", "KEYHOLE_PASSPHRASE", "KEYHOLE_BOOTSTRAP_CODE"];

/**
 * Credentials set in `keyhole run`'s own environment. The child runs as the same user and can
 * read its parent's `/proc/<pid>/environ`, whatever environment it was given itself, so these
 * must not be there at all: the token and the owner's passphrase, and the key each route stands
 * in for (the variable named after the secret, the variable that gets the capability).
 */
export function exposedCredentials(
  parent: Readonly<Record<string, string | undefined>>,
  routes: readonly Route[],
  attachedVars: Readonly<Record<string, string>> = {},
): string[] {
  const names = new Set(KEYHOLE_CREDENTIALS);
  for (const route of routes) {
    names.add(secretEnvName(route.secret));
    for (const [name, value] of Object.entries(route.env))
      if (value.includes(CAPABILITY_PLACEHOLDER)) names.add(name);
  }
  for (const [name, value] of Object.entries(attachedVars))
    if (isCapabilityShaped(value)) names.add(name);
  return [...names].filter((name) => (parent[name] ?? "") !== "");
}

/** Parses one `--env` argument; `KEYHOLE_*` is refused (the child must not talk to the vault). */
export function parseEnvArgument(
  arg: string,
  parent: Readonly<Record<string, string | undefined>>,
): [string, string | undefined] {
  const eq = arg.indexOf("=");
  const name = eq === -1 ? arg : arg.slice(0, eq);
  if (!ENV_NAME.test(name)) throw usageError("--env needs NAME or NAME=VALUE");
  if (name.toUpperCase().startsWith("KEYHOLE_"))
    throw usageError("--env cannot pass KEYHOLE_* variables to the child");
  return [name, eq === -1 ? parent[name] : arg.slice(eq + 1)];
}

/** Builds the child's environment. */
export function buildChildEnv(input: ChildEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  const stripped = strippedNames(input.routes);
  for (const [name, value] of Object.entries(input.parent)) {
    if (value === undefined) continue;
    const kept = input.inherit
      ? !name.toUpperCase().startsWith("KEYHOLE_") && !stripped.has(name)
      : BASE_NAMES.includes(name) || name.startsWith("LC_");
    if (kept) env[name] = value;
  }
  for (const arg of input.extra) {
    const [name, value] = parseEnvArgument(arg, input.parent);
    if (stripped.has(name)) throw usageError(`--env ${name}: a route sets this variable`);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...input.routeVars };
}
