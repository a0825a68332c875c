/**
 * Test support: raw HTTP calls with `node:http`, so tests can send anything (a body on GET,
 * malformed JSON, chunked bodies past the limit) and see exactly what comes back.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";

/** What came back. */
export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The parsed body (null when it is not JSON). */
  readonly json: unknown;
}

/** One request. `body` objects are sent as JSON; strings and bytes as they are. */
export interface HttpCall {
  readonly method: string;
  /** Path with query, sent verbatim. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  /** Send the body in chunks without a content-length. */
  readonly chunked?: boolean;
}

/** The bytes a call sends. */
export function bodyBytes(body: unknown): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof Uint8Array) return Buffer.from(body);
  return Buffer.from(JSON.stringify(body), "utf8");
}

/** Sends a request to `baseUrl` and reads the whole answer. */
export function call(baseUrl: string, c: HttpCall): Promise<HttpResult> {
  const url = new URL(baseUrl);
  const payload = bodyBytes(c.body);
  const headers: Record<string, string> = { ...c.headers };
  if (c.body !== undefined && !("content-type" in headers))
    headers["content-type"] = "application/json";
  if (!c.chunked && c.body !== undefined) headers["content-length"] = String(payload.length);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      {
        host: url.hostname.replace(/^\[|\]$/g, ""),
        port: url.port,
        method: c.method,
        path: c.path,
        headers,
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on("error", reject);
      },
    );
    // The server may answer (413) and close before the whole body is written.
    req.on("error", (error) => {
      if (!answered) reject(error);
    });
    if (c.chunked) {
      const step = 64 * 1024;
      let offset = 0;
      const pump = () => {
        while (offset < payload.length) {
          const ok = req.write(payload.subarray(offset, offset + step));
          offset += step;
          if (!ok) {
            req.once("drain", pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else {
      req.end(payload);
    }
  });
}

/** The `error.code` of an error answer, or undefined. */
export function errorCode(result: HttpResult): string | undefined {
  const body = result.json as { error?: { code?: string } } | null;
  return body?.error?.code;
}
