/**
 * Resolves a Vault's configuration from its options and the environment (DESIGN.md §6.1).
 *
 * Only cheap, non-secret checks happen here, synchronously, in the constructor: the address, the
 * transport policy and *where* the token will come from. The token itself is read, parsed and its
 * keys derived on first use, so a secret never sits in memory before the moment it is needed.
 */
import { KeyholeError } from "@keyhole/core";

/** Sent in the `user-agent` header; checked against package.json by a test. */
export const SDK_VERSION = "0.1.0";
/** Where a local `keyhole server` listens by default. */
export const DEFAULT_ADDR = "http://127.0.0.1:8250";
/** Default for `timeoutMs`: the whole request, connect to last byte. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** Options of `new Vault()`. Every field is optional; the environment fills the gaps. */
export interface VaultOptions {
  /** Server address, `https://host[:port][/base]`. Default: `KEYHOLE_ADDR`, else `http://127.0.0.1:8250`. */
  addr?: string;
  /** The `kh1_…` agent token. Prefer `tokenFile`: a string in code or argv leaks easily. */
  token?: string;
  /** Path of a file holding the agent token (Node only). Default: `KEYHOLE_TOKEN_FILE`. */
  tokenFile?: string;
  /** Allow plain `http://` to a non-loopback host. Only behind a TLS-terminating proxy you trust. */
  allowInsecureHttp?: boolean;
  /**
   * Milliseconds for which a fetched answer is reused. The *ciphertext* answer is cached, never the
   * plaintext: every read still verifies and decrypts. Default 0: no cache.
   */
  cacheTtl?: number;
  /** Timeout of each request in milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Your product token, prepended to `keyhole-sdk/<version>` in the `user-agent` (audit log). */
  userAgent?: string;
}

/** Where the agent token comes from; only `text` holds it, and only until first use. */
export type TokenSource =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "env" }
  | { readonly kind: "file"; readonly path: string; readonly fromEnv: boolean };

/** A validated configuration. Holds no secret except a `token` option not yet used. */
export interface VaultConfig {
  /** Origin plus base path, without a trailing slash: safe to show. */
  readonly addr: string;
  readonly token: TokenSource;
  readonly cacheTtl: number;
  readonly timeoutMs: number;
  readonly userAgent: string;
}

/** The environment variables the SDK reads. */
export type VaultEnv = Readonly<Record<string, string | undefined>>;

const MISSING_TOKEN =
  "no agent token: set KEYHOLE_TOKEN_FILE (preferred) or KEYHOLE_TOKEN, " +
  "or pass { tokenFile } or { token } to new Vault()";

/**
 * Validates `options` and fills the gaps from `env`. Throws `config_error` for a missing or bad
 * setting and `insecure_transport` for plain http to a non-loopback host. Never echoes a value
 * that could be a secret.
 */
export function resolveConfig(options: VaultOptions, env: VaultEnv): VaultConfig {
  if (typeof options !== "object" || options === null) {
    throw new KeyholeError("config_error", "Vault options must be an object");
  }
  const addr = resolveAddr(options.addr ?? nonEmpty(env.KEYHOLE_ADDR) ?? DEFAULT_ADDR, options);
  return {
    addr,
    token: resolveTokenSource(options, env),
    cacheTtl: resolveNumber(options.cacheTtl, 0, 0, "cacheTtl"),
    timeoutMs: resolveNumber(options.timeoutMs, DEFAULT_TIMEOUT_MS, 1, "timeoutMs"),
    userAgent: resolveUserAgent(options.userAgent),
  };
}

/**
 * True for hosts that cannot leave the machine: `localhost`, 127.0.0.0/8 and `::1`. `hostname` is
 * as `URL` gives it: IPv4 already normalised (`127.1` → `127.0.0.1`), IPv6 in brackets.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === "localhost" || host === "[::1]") return true;
  const octets = host.split(".");
  return (
    octets.length === 4 &&
    octets[0] === "127" &&
    octets.every((o) => /^(0|[1-9][0-9]{0,2})$/.test(o) && Number(o) <= 255)
  );
}

function resolveAddr(text: string, options: VaultOptions): string {
  // The value is not echoed: a token pasted into KEYHOLE_ADDR by mistake must not reach a log.
  const invalid = "the Keyhole address (addr or KEYHOLE_ADDR) is not a valid http(s) URL";
  if (typeof text !== "string") throw new KeyholeError("config_error", invalid);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new KeyholeError("config_error", invalid);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new KeyholeError("config_error", invalid);
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new KeyholeError(
      "config_error",
      "the Keyhole address must not carry credentials, a query or a fragment",
    );
  }
  if (
    url.protocol === "http:" &&
    !isLoopbackHost(url.hostname) &&
    options.allowInsecureHttp !== true
  ) {
    throw new KeyholeError(
      "insecure_transport",
      `refusing plain http:// to ${url.host}: use https://, a loopback address, ` +
        "or allowInsecureHttp: true behind a TLS proxy you trust",
    );
  }
  return url.origin + url.pathname.replace(/\/+$/, "");
}

function resolveTokenSource(options: VaultOptions, env: VaultEnv): TokenSource {
  if (options.token !== undefined && options.tokenFile !== undefined) {
    throw new KeyholeError(
      "config_error",
      "pass either token or tokenFile to new Vault(), not both",
    );
  }
  if (options.token !== undefined) {
    if (typeof options.token !== "string") {
      throw new KeyholeError("config_error", "the token option must be a string");
    }
    return { kind: "text", text: options.token };
  }
  if (options.tokenFile !== undefined) {
    if (typeof options.tokenFile !== "string" || options.tokenFile === "") {
      throw new KeyholeError("config_error", "the tokenFile option must be a non-empty path");
    }
    return { kind: "file", path: options.tokenFile, fromEnv: false };
  }
  const file = nonEmpty(env.KEYHOLE_TOKEN_FILE);
  if (file !== undefined) return { kind: "file", path: file, fromEnv: true };
  if (nonEmpty(env.KEYHOLE_TOKEN) !== undefined) return { kind: "env" };
  throw new KeyholeError("config_error", MISSING_TOKEN);
}

function resolveNumber(
  value: number | undefined,
  fallback: number,
  min: number,
  name: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new KeyholeError("config_error", `${name} must be a finite number ≥ ${min}`);
  }
  return value;
}

function resolveUserAgent(product: string | undefined): string {
  const sdk = `keyhole-sdk/${SDK_VERSION}`;
  if (product === undefined) return sdk;
  // Printable ASCII only: anything else could split the header.
  if (typeof product !== "string" || !/^[\x20-\x7e]{1,200}$/.test(product)) {
    throw new KeyholeError("config_error", "userAgent must be 1–200 printable ASCII characters");
  }
  return `${product} ${sdk}`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** The process environment where there is one (Node, Deno, Bun), else nothing. */
export function readEnv(): VaultEnv {
  return globalThis.process?.env ?? {};
}
