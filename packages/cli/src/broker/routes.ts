/**
 * Broker routes: which local path prefix goes to which upstream origin, with which secret, injected
 * how. Parsing is strict and fails closed: an unknown field, a non-https upstream or a template
 * without exactly one `{{secret}}` is refused with one terse `config_error`, never half-accepted.
 */
import { KeyholeError } from "@keyhole/core";

/** How the credential is put on the outbound request. */
export type Injection =
  | { readonly kind: "header"; readonly name: string; readonly template: string }
  | { readonly kind: "query"; readonly param: string }
  | { readonly kind: "basic"; readonly user?: string };

/** A local prefix mapped to an upstream origin and the secret it needs. */
export interface Route {
  /** Short name, `[a-z][a-z0-9-]*`, used in logs and on the command line. */
  readonly name: string;
  /** Local path prefix, e.g. `/openai`; matched on whole path segments. */
  readonly prefix: string;
  /** Upstream origin only (scheme, host, port), e.g. `https://api.openai.com`. */
  readonly upstream: string;
  /** Name of the vault secret to inject. */
  readonly secret: string;
  readonly inject: Injection;
  /**
   * Environment variables `keyhole run` sets for the child; `{{broker}}` stands for the broker's
   * base URL (`http://127.0.0.1:PORT`), `{{capability}}` for the per-run placeholder credential.
   */
  readonly env: Readonly<Record<string, string>>;
}

/** Options for parsing; the flag exists for tests against a local upstream only. */
export interface RouteParseOptions {
  /** Accept `http://` upstreams, but only when the host is loopback. Test-only. */
  readonly allowPlainHttpLoopbackUpstream?: boolean;
}

/** The placeholder in header templates. */
export const SECRET_PLACEHOLDER = "{{secret}}";
/** The placeholders in route environment values. */
export const BROKER_PLACEHOLDER = "{{broker}}";
export const CAPABILITY_PLACEHOLDER = "{{capability}}";

const NAME = /^[a-z][a-z0-9-]{0,31}$/;
const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const PREFIX = /^(\/[A-Za-z0-9._-]+)+$/;
// RFC 9110 §5.6.2 token.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PARAM = /^[A-Za-z0-9._~-]+$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
// Headers the broker owns or strips; a route must not inject into them.
const RESERVED_HEADERS = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "expect",
]);

function invalid(what: string): never {
  throw new KeyholeError("config_error", `invalid route: ${what}`);
}

/** True for `localhost`, `127.0.0.0/8` and `[::1]` as they appear in `URL.hostname`. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** Parses and checks an upstream origin; returns it normalised (`URL.origin`). */
export function parseUpstream(value: unknown, options: RouteParseOptions = {}): string {
  if (typeof value !== "string") invalid("upstream must be a string");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    invalid("upstream is not a URL");
  }
  if (url.username !== "" || url.password !== "") invalid("upstream must not carry credentials");
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== "")
    invalid("upstream must be an origin, without path, query or fragment");
  if (url.protocol === "http:") {
    if (options.allowPlainHttpLoopbackUpstream !== true || !isLoopbackHost(url.hostname))
      invalid("upstream must use https");
  } else if (url.protocol !== "https:") invalid("upstream must use https");
  return url.origin;
}

function parseInjection(value: unknown): Injection {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    invalid("inject must be an object");
  const obj = value as Record<string, unknown>;
  const kind = obj.kind;
  if (kind === "header") {
    onlyKeys(obj, ["kind", "name", "template"], "inject");
    const name = obj.name;
    const template = obj.template;
    if (typeof name !== "string" || !HEADER_NAME.test(name)) invalid("inject.name");
    if (RESERVED_HEADERS.has(name.toLowerCase())) invalid("inject.name is reserved");
    if (typeof template !== "string" || /[\0\r\n]/.test(template)) invalid("inject.template");
    if (template.split(SECRET_PLACEHOLDER).length !== 2)
      invalid("inject.template must hold {{secret}} exactly once");
    return { kind, name: name.toLowerCase(), template };
  }
  if (kind === "query") {
    onlyKeys(obj, ["kind", "param"], "inject");
    if (typeof obj.param !== "string" || !PARAM.test(obj.param)) invalid("inject.param");
    return { kind, param: obj.param };
  }
  if (kind === "basic") {
    onlyKeys(obj, ["kind", "user"], "inject");
    if (obj.user === undefined) return { kind };
    // RFC 7617 §2: the user-id must not contain a colon; printable ASCII only.
    if (typeof obj.user !== "string" || !/^[ -9;-~]{0,256}$/.test(obj.user)) invalid("inject.user");
    return { kind, user: obj.user };
  }
  return invalid("inject.kind must be header, query or basic");
}

function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj))
    if (!allowed.includes(key)) invalid(`unknown field in ${where}: ${JSON.stringify(key)}`);
}

function parseEnv(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value))
    invalid("env must be an object");
  const env: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!ENV_NAME.test(key) || key.startsWith("KEYHOLE_")) invalid("env name");
    if (typeof v !== "string" || /[\0\r\n]/.test(v)) invalid("env value");
    env[key] = v;
  }
  return env;
}

/** Checks one route object (as found in a routes file). */
export function parseRoute(value: unknown, options: RouteParseOptions = {}): Route {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    invalid("route must be an object");
  const obj = value as Record<string, unknown>;
  onlyKeys(obj, ["name", "prefix", "upstream", "secret", "inject", "env"], "route");
  if (typeof obj.name !== "string" || !NAME.test(obj.name)) invalid("name");
  const prefix = obj.prefix ?? `/${obj.name}`;
  if (typeof prefix !== "string" || !PREFIX.test(prefix) || /\/\.\.?(\/|$)/.test(prefix))
    invalid("prefix");
  if (typeof obj.secret !== "string" || !SECRET_NAME.test(obj.secret)) invalid("secret");
  return {
    name: obj.name,
    prefix,
    upstream: parseUpstream(obj.upstream, options),
    secret: obj.secret,
    inject: parseInjection(obj.inject),
    env: parseEnv(obj.env),
  };
}

/** Refuses two routes with the same name, overlapping prefixes (`/a` and `/a/b`) or a shared variable. */
export function checkRouteSet(routes: readonly Route[]): void {
  for (const [i, a] of routes.entries())
    for (const b of routes.slice(i + 1)) {
      if (a.name === b.name) invalid(`duplicate name ${JSON.stringify(a.name)}`);
      for (const name of Object.keys(a.env))
        if (Object.hasOwn(b.env, name)) invalid(`two routes set ${name}`);
      if (
        a.prefix === b.prefix ||
        a.prefix.startsWith(`${b.prefix}/`) ||
        b.prefix.startsWith(`${a.prefix}/`)
      )
        invalid(`overlapping prefixes ${a.prefix} and ${b.prefix}`);
    }
}

/** Parses a routes file: `{ "routes": [ Route, ... ] }`, nothing else. */
export function parseRoutesFile(text: string, options: RouteParseOptions = {}): Route[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    invalid("routes file is not JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    invalid("routes file must be an object");
  const obj = json as Record<string, unknown>;
  onlyKeys(obj, ["routes"], "routes file");
  if (!Array.isArray(obj.routes) || obj.routes.length === 0) invalid("routes must be a list");
  const routes = obj.routes.map((r) => parseRoute(r, options));
  checkRouteSet(routes);
  return routes;
}

/** The built-in presets, each setting the variables its provider's official SDK reads. */
export const PRESETS: Readonly<Record<string, Route>> = {
  openai: {
    name: "openai",
    prefix: "/openai",
    upstream: "https://api.openai.com",
    secret: "openai-api-key",
    inject: { kind: "header", name: "authorization", template: "Bearer {{secret}}" },
    env: { OPENAI_BASE_URL: "{{broker}}/openai/v1", OPENAI_API_KEY: "{{capability}}" },
  },
  anthropic: {
    name: "anthropic",
    prefix: "/anthropic",
    upstream: "https://api.anthropic.com",
    secret: "anthropic-api-key",
    inject: { kind: "header", name: "x-api-key", template: "{{secret}}" },
    env: { ANTHROPIC_BASE_URL: "{{broker}}/anthropic", ANTHROPIC_API_KEY: "{{capability}}" },
  },
  github: {
    name: "github",
    prefix: "/github",
    upstream: "https://api.github.com",
    secret: "github-token",
    inject: { kind: "header", name: "authorization", template: "Bearer {{secret}}" },
    env: { GITHUB_API_URL: "{{broker}}/github", GITHUB_TOKEN: "{{capability}}" },
  },
};

/** Splits `a=1,b='x, y'` on commas outside single or double quotes. */
function splitSpec(spec: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quote: string | null = null;
  for (const ch of spec) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      else current += ch;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === ",") {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  if (quote !== null) invalid("unterminated quote");
  parts.push(current);
  return parts;
}

/**
 * Parses a `--route` argument: a preset name (`openai`), a preset with options
 * (`openai,secret=work-key`), or the generic form
 * `NAME=https://host,secret=S,header='X-Api-Key: {{secret}}'` (also `query=PARAM`, `basic`,
 * `basic=USER`).
 */
export function parseRouteSpec(spec: string, options: RouteParseOptions = {}): Route {
  const [head = "", ...rest] = splitSpec(spec);
  const eq = head.indexOf("=");
  const name = eq === -1 ? head : head.slice(0, eq);
  const fields: Record<string, string | true> = {};
  for (const part of rest) {
    const i = part.indexOf("=");
    const key = i === -1 ? part : part.slice(0, i);
    if (key in fields) invalid(`repeated option ${JSON.stringify(key)}`);
    fields[key] = i === -1 ? true : part.slice(i + 1);
  }
  const secret = fields.secret;
  if (secret === true) invalid("secret needs a value");
  if (eq === -1) {
    const preset = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined;
    if (preset === undefined) invalid(`unknown preset ${JSON.stringify(name)}`);
    for (const key of Object.keys(fields)) if (key !== "secret") invalid(`unknown option ${key}`);
    return parseRoute({ ...preset, secret: secret ?? preset.secret });
  }
  let inject: unknown;
  const kinds = ["header", "query", "basic"].filter((k) => k in fields);
  if (kinds.length !== 1) invalid("give exactly one of header=, query=, basic");
  if (fields.header !== undefined) {
    if (fields.header === true) invalid("header needs a value");
    const colon = fields.header.indexOf(":");
    if (colon === -1) invalid("header must be 'Name: template'");
    inject = {
      kind: "header",
      name: fields.header.slice(0, colon).trim(),
      template: fields.header.slice(colon + 1).trim(),
    };
  } else if (fields.query !== undefined) {
    inject = { kind: "query", param: fields.query };
  } else {
    inject = fields.basic === true ? { kind: "basic" } : { kind: "basic", user: fields.basic };
  }
  for (const key of Object.keys(fields))
    if (!["secret", "header", "query", "basic", "url-env", "key-env"].includes(key))
      invalid(`unknown option ${key}`);
  if (secret === undefined) invalid("secret= is required");
  const stem = name.toUpperCase().replaceAll("-", "_");
  const urlEnv = fields["url-env"] ?? `${stem}_BASE_URL`;
  const keyEnv = fields["key-env"] ?? `${stem}_API_KEY`;
  if (urlEnv === true || keyEnv === true) invalid("url-env and key-env need a value");
  if (urlEnv === keyEnv) invalid("url-env and key-env must differ");
  const env = { [urlEnv]: `${BROKER_PLACEHOLDER}/${name}`, [keyEnv]: CAPABILITY_PLACEHOLDER };
  return parseRoute({ name, upstream: head.slice(eq + 1), secret, inject, env }, options);
}

/** The environment variable that conventionally holds a secret: `openai-api-key` → `OPENAI_API_KEY`. */
export function secretEnvName(secret: string): string {
  return secret.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}

/** A route's variables for a child: placeholders replaced by the broker URL and capability. */
export function routeEnv(
  route: Route,
  brokerUrl: string,
  capability: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(route.env))
    env[name] = value
      .replaceAll(BROKER_PLACEHOLDER, brokerUrl)
      .replaceAll(CAPABILITY_PLACEHOLDER, capability);
  return env;
}
