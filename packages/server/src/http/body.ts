/**
 * Request bodies: JSON only, at most 256 KiB. Reading stops as soon as the limit is passed (the
 * declared length is checked before reading at all), and every malformed body is `bad_request`
 * with a message that never quotes the input.
 */
import type { IncomingMessage } from "node:http";
import { KeyholeError } from "@keyhole/core";

/** The largest body accepted (docs/api.md). */
export const MAX_BODY_BYTES = 256 * 1024;

const EMPTY = new Uint8Array(0);

/** Reads the raw body, or rejects `payload_too_large` without reading past the limit. */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Uint8Array> {
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
    const cleanup = () => {
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
