/**
 * The owner's HTTP client. Every owner route is signed (docs/api.md "Authentication"):
 * Ed25519 over the method, the exact path with query, a timestamp, a random 16-byte nonce and
 * SHA-256 of the exact body bytes sent. Error bodies become `KeyholeError`s with the server's
 * code. Plain http:// is refused for anything but loopback unless explicitly allowed, because
 * signed requests still leak names, sizes and timing to a network observer.
 */
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import {
  encodeOwnerRequestMessage,
  formatOwnerAuthorization,
  isKeyholeError,
  isWireErrorCode,
  KeyholeError,
  type SigningKey,
  sign,
} from "@keyhole/core";
import { sanitize } from "../format.js";

/** The address used when neither `--addr`, `KEYHOLE_ADDR` nor the config says otherwise. */
export const DEFAULT_ADDR = "http://127.0.0.1:8250";
const USER_AGENT = "keyhole-cli/0.1.0";
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
const TIMEOUT_MS = 30_000;

/** True for `localhost`, 127.0.0.0/8 and ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/**
 * Parses and checks a server address: http(s), no credentials, no path, query or fragment,
 * and http:// only to loopback unless `insecureHttp`.
 */
export function parseServerAddress(addr: string, insecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw new KeyholeError("config_error", `invalid server address '${sanitize(addr)}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new KeyholeError(
      "config_error",
      "the server address must start with http:// or https://",
    );
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new KeyholeError("config_error", "the server address must be scheme://host[:port] only");
  }
  if (url.pathname !== "/" && url.pathname !== "") {
    throw new KeyholeError("config_error", "the server address must be scheme://host[:port] only");
  }
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname) && !insecureHttp) {
    throw new KeyholeError(
      "insecure_transport",
      "refusing plain http:// to a non-loopback address (use https://, or --insecure-http)",
    );
  }
  return url;
}

/** A parsed JSON answer. */
export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
}

/** Who signs: the vault id bound into every signature and the owner's signing key. */
export interface OwnerIdentity {
  readonly vaultId: string;
  readonly signingKey: SigningKey;
}

/** Talks to one Keyhole server; signs owner requests when given an identity. */
export class OwnerClient {
  readonly url: URL;
  readonly #identity: OwnerIdentity | null;

  constructor(url: URL, identity: OwnerIdentity | null) {
    this.url = url;
    this.#identity = identity;
  }

  /** An unsigned request (the public routes: `/v1/info`, `/v1/init`). */
  async publicRequest(method: string, path: string, body?: unknown): Promise<unknown> {
    const bytes = body === undefined ? undefined : Buffer.from(JSON.stringify(body), "utf8");
    return (await this.#send(method, path, bytes, undefined)).body;
  }

  /** A signed owner request; resolves with the JSON body of a 2xx answer, throws otherwise. */
  async request(method: string, path: string, body?: unknown): Promise<unknown> {
    return (await this.requestRaw(method, path, body)).body;
  }

  /** Like `request`, but a 404 is `null` (expected absence is a value, not an exception). */
  async requestOrNull(method: string, path: string): Promise<unknown> {
    try {
      return (await this.requestRaw(method, path)).body;
    } catch (error) {
      if (isKeyholeError(error) && error.code === "not_found") return null;
      throw error;
    }
  }

  /** A signed owner request, returning the status and body of a 2xx answer. */
  async requestRaw(method: string, path: string, body?: unknown): Promise<JsonResponse> {
    const identity = this.#identity;
    if (identity === null) throw new KeyholeError("internal");
    const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body), "utf8");
    const timestamp = Date.now();
    const nonce = randomBytes(16);
    const message = encodeOwnerRequestMessage({
      vaultId: identity.vaultId,
      method,
      pathWithQuery: path,
      timestamp,
      nonce,
      bodyHash: createHash("sha256").update(bytes).digest(),
    });
    const signature = await sign(identity.signingKey, message);
    const authorization = formatOwnerAuthorization(timestamp, nonce, signature);
    return this.#send(method, path, body === undefined ? undefined : bytes, authorization);
  }

  #send(
    method: string,
    path: string,
    body: Buffer | undefined,
    authorization: string | undefined,
  ): Promise<JsonResponse> {
    const url = this.url;
    const headers: Record<string, string> = {
      "user-agent": USER_AGENT,
      accept: "application/json",
    };
    if (authorization !== undefined) headers.authorization = authorization;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(body.length);
    }
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise<JsonResponse>((resolve, reject) => {
      const req = request(
        {
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[|\]$/g, ""),
          port: url.port === "" ? undefined : Number(url.port),
          method,
          path,
          headers,
          timeout: TIMEOUT_MS,
          agent: false,
        },
        (res) => {
          readResponse(res).then(resolve, reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", () => {
        reject(
          new KeyholeError("network_error", `could not reach the Keyhole server at ${url.origin}`),
        );
      });
      req.end(body);
    });
  }
}

function readResponse(res: IncomingMessage): Promise<JsonResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy();
        reject(new KeyholeError("untrusted_server", "the server's answer is too large"));
        return;
      }
      chunks.push(chunk);
    });
    res.on("error", () => reject(new KeyholeError("network_error", "the connection broke")));
    res.on("end", () => {
      const status = res.statusCode ?? 0;
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = null;
      if (text !== "") {
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
      }
      if (status >= 400) {
        reject(errorFromResponse(status, body, res.headers["retry-after"]));
        return;
      }
      if (body === undefined) {
        reject(new KeyholeError("untrusted_server", "the server's answer is not JSON"));
        return;
      }
      resolve({ status, body });
    });
  });
}

/** Turns an error answer into a KeyholeError with the server's code and a sanitised message. */
export function errorFromResponse(
  status: number,
  body: unknown,
  retryAfter?: string | string[],
): KeyholeError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null | undefined)
    ?.error;
  const retry = typeof retryAfter === "string" && /^[0-9]{1,6}$/.test(retryAfter);
  const options = retry ? { retryAfterSeconds: Number(retryAfter) } : undefined;
  if (error !== undefined && isWireErrorCode(error.code)) {
    const message =
      typeof error.message === "string" && error.message.trim() !== ""
        ? sanitize(error.message).slice(0, 200)
        : undefined;
    return new KeyholeError(error.code, message, options);
  }
  return new KeyholeError("network_error", `the server answered HTTP ${status}`, options);
}
