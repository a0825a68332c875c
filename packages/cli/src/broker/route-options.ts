/**
 * The route options `keyhole broker` and `keyhole run` share: `--route SPEC` (repeatable),
 * `--routes FILE`, `--cache-ttl` and the test-only `--allow-plain-http-upstream`.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { KeyholeError } from "@keyhole/core";
import {
  type OptionSpec,
  type ParsedArgs,
  parseDuration,
  stringOption,
  usageError,
} from "../args.js";
import type { Io } from "../io.js";
import {
  checkRouteSet,
  parseRouteSpec,
  parseRoutesFile,
  type Route,
  type RouteParseOptions,
} from "./routes.js";

/** The option table entries for routes. */
export const ROUTE_OPTIONS: OptionSpec = {
  route: { type: "string", multiple: true },
  routes: { type: "string" },
  "cache-ttl": { type: "string" },
  "allow-plain-http-upstream": { type: "boolean" },
};

/** The help lines for {@link ROUTE_OPTIONS}. */
export const ROUTE_HELP = `  --route SPEC       a preset (openai, anthropic, github; e.g. openai,secret=work-key)
                     or NAME=https://host,secret=S,header='X-Api-Key: {{secret}}'
                     (or query=PARAM, basic, basic=USER; url-env=VAR, key-env=VAR);
                     repeatable
  --routes FILE      routes from a JSON file: {"routes": [{name, prefix, upstream,
                     secret, inject, env}, ...]} (see docs/broker.md)
  --cache-ttl DUR    keep each decrypted value in memory this long (e.g. 30s); default 0:
                     fetch from the vault on every call
`;

/** Every `--route` given, as strings (parseArgs returns a list for a repeatable option). */
export function routeSpecs(args: ParsedArgs): string[] {
  const value = (args.values as Record<string, unknown>).route;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** The test-only flag, refused outside tests so nobody ships a plain-http upstream by accident. */
export function plainHttpAllowed(io: Io, args: ParsedArgs): boolean {
  if (args.values["allow-plain-http-upstream"] !== true) return false;
  if (io.env.KEYHOLE_TEST !== "1")
    throw usageError("--allow-plain-http-upstream is for tests only (needs KEYHOLE_TEST=1)");
  return true;
}

/** The routes of `--routes FILE` and every `--route`, checked as one set; at least one. */
export function collectRoutes(io: Io, args: ParsedArgs): Route[] {
  const options: RouteParseOptions = { allowPlainHttpLoopbackUpstream: plainHttpAllowed(io, args) };
  const routes: Route[] = [];
  const file = stringOption(args, "routes");
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(resolve(io.cwd, file), "utf8");
    } catch {
      throw new KeyholeError("config_error", `cannot read the routes file ${file}`);
    }
    routes.push(...parseRoutesFile(text, options));
  }
  for (const spec of routeSpecs(args)) routes.push(parseRouteSpec(spec, options));
  if (routes.length === 0) throw usageError("give at least one --route or --routes FILE");
  checkRouteSet(routes);
  return routes;
}

/** `--cache-ttl` in ms (0 when absent). */
export function cacheTtl(args: ParsedArgs): number {
  const text = stringOption(args, "cache-ttl");
  return text === undefined || text === "0" ? 0 : parseDuration(text, "--cache-ttl");
}
