/**
 * Request bodies: JSON only, at most 256 KiB (512 KiB on the routes that carry many grants,
 * `Route.maxBodyBytes`). Reading stops as soon as the limit is passed (the
 * declared length is checked before reading at all), and every malformed body is `bad_request`
 * with a message that never quotes the input.
 *
 * A body must also arrive within a deadline counted from the end of the headers (10 s by
 * default): a request that declares a body and never sends it would otherwise hold its in-flight
 * slot (http/in-flight.ts) until Node's 30 s request timeout, renewable by reconnecting. The app
 * answers a missed deadline with a coded 408 and closes the connection.
 */
import type { IncomingMessage } from "node:http";
import { KeyholeError } from "@keyhole/core";

/** The largest body accepted by most routes (docs/api.md). */
export const MAX_BODY_BYTES = 256 * 1024;

/**
 * The largest body of the three owner routes that carry one re-wrapped grant per agent or per
 * secret (`secret set`, `agent create`, `agent rotate`): up to 1,000 grants of about 400 bytes of
 * JSON each. 256 KiB held only about 650, so a rotate of an agent with 1,000 grants was refused
 * after the owner had done all the work (bench/owner-ops.mjs).
 */
export const MAX_GRANTS_BODY_BYTES = 512 * 1024;

/**
 * Default time for a whole body to arrive once the headers are in, in ms: 256 KiB in 10 s is
 * 26 KB/s, slower than any link a vault client should be on.
 */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;

const EMPTY = new Uint8Array(0);

const TIMED_OUT = Symbol("keyhole.bodyTimedOut");

/** True for the error `readBody` rejects with when the body missed its deadline. */
export function isBodyTimeout(error: unknown): boolean {
  return typeof error === "object" && error !== null && TIMED_OUT in error;
}

/**
 * Reads the raw body, or rejects `payload_too_large` without reading past the limit, or
 * `bad_request` (see `isBodyTimeout`) when it has not all arrived within `timeoutMs`.
 */
export function readBody(
  req: IncomingMessage,
  limit = MAX_BODY_BYTES,
  timeoutMs = DEFAULT_BODY_TIMEOUT_MS,
): Promise<Uint8Array> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && !/^\d+$/.test(declared)) {
    return Promise.reject(new KeyholeError("bad_request", "invalid content-length"));
  }
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new KeyholeError("payload_too_large"));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const deadline = setTimeout(() => {
      cleanup();
      req.pause();
      const error = new KeyholeError("bad_request", "the request body took too long to arrive");
      reject(Object.assign(error, { [TIMED_OUT]: true }));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(deadline);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onError);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) {
        // Stop reading here; the response closes the connection instead of draining the rest.
        cleanup();
        req.pause();
        reject(new KeyholeError("payload_too_large"));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(total === 0 ? EMPTY : new Uint8Array(Buffer.concat(chunks, total)));
    };
    const onError = () => {
      cleanup();
      reject(new KeyholeError("bad_request", "the request body could not be read"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    // A client that goes away mid-body: settle instead of waiting forever.
    req.on("close", onError);
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses a JSON body. `contentType` must be `application/json` (parameters allowed); the bytes
 * must be valid UTF-8 and valid JSON. An empty body is `undefined`.
 */
export function parseJsonBody(raw: Uint8Array, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined;
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new KeyholeError("bad_request", "the body must be application/json");
  }
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new KeyholeError("bad_request", "the body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new KeyholeError("bad_request", "the body is not valid JSON");
  }
}
