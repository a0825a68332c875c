/**
 * The SDK's view of HTTP: one GET, a body capped in size, a deadline over the whole exchange, no
 * redirects. Two transports implement it: `fetch` here (runtime-neutral) and a keep-alive
 * `node:http` one in `node.ts`, which the Vault prefers on Node because loading Node 20's global
 * fetch (undici) costs about 50 ms on the first request.
 */
import { KeyholeError } from "@keyhole/core";
import { errorFromResponse, malformedAnswer, networkError, timeoutError } from "./errors.js";

/**
 * Largest answer read. The contract caps bodies at 256 KiB; this guard is wider so that a server
 * near its limit still works, and exists so a hostile server cannot stream without end.
 */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/** One GET request. `headers` carries the Authorization header: never log it. */
export interface HttpRequest {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

/** A whole answer, read to its end. */
export interface HttpResponse {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly body: Uint8Array;
}

/**
 * Carries one request. Failures to connect, read or finish in time are `network_error`; an
 * oversized body is `untrusted_server`. Redirects are returned, never followed (following one
 * could carry the Authorization header elsewhere).
 */
export interface Transport {
  request(request: HttpRequest): Promise<HttpResponse>;
  /** Drops idle kept-alive connections. */
  close(): void;
}

/** A transport over the global `fetch` (browsers, Deno, Bun, workers, Node when asked). */
export function createFetchTransport(fetchImpl: typeof fetch = globalThis.fetch): Transport {
  return {
    async request({ url, headers, timeoutMs }) {
      const origin = new URL(url).origin;
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      try {
        const response = await fetchImpl(url, {
          method: "GET",
          headers,
          redirect: "manual",
          credentials: "omit",
          signal: controller.signal,
        });
        const body = await readCapped(response);
        return { status: response.status, retryAfter: response.headers.get("retry-after"), body };
      } catch (error) {
        if (error instanceof KeyholeError) throw error;
        if (timedOut) throw timeoutError(origin, timeoutMs);
        throw networkError(origin, causeCode(error));
      } finally {
        clearTimeout(timer);
      }
    },
    close() {},
  };
}

async function readCapped(response: Response): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => {});
      throw malformedAnswer("body too large");
    }
    chunks.push(value);
  }
  return concatChunks(chunks, size);
}

/** Joins body chunks into one array. */
export function concatChunks(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

// undici reports "fetch failed" with the errno-style code on `cause`.
function causeCode(error: unknown): unknown {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return cause?.code;
}

/**
 * GETs `url` and returns the parsed JSON of a 200 answer. Any other status becomes the mapped
 * `KeyholeError`; a 200 that is not JSON is `untrusted_server`.
 */
export async function getJson(transport: Transport, request: HttpRequest): Promise<unknown> {
  const response = await transport.request(request);
  if (response.status !== 200) {
    throw errorFromResponse(response.status, response.body, response.retryAfter);
  }
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(response.body));
  } catch {
    throw malformedAnswer("not JSON");
  }
}
