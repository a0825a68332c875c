/**
 * A small, strict upstream for the broker end-to-end tests: it listens on 127.0.0.1 port 0
 * (plain HTTP, or HTTPS with a certificate made at test time), answers 401 to any request whose
 * `authorization` is not exactly `Bearer <expected>`, and records every request it receives so a
 * test can prove what reached it (and what did not).
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";

/** One request as the upstream saw it (headers included: only the test reads them). */
export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  readonly authorized: boolean;
}

/** A running upstream. */
export interface Upstream {
  /** `http://127.0.0.1:PORT` (or https). */
  readonly url: string;
  /** `127.0.0.1:PORT`, as a grant's `--hosts` entry. */
  readonly host: string;
  /** The credential value it accepts; a test sets a new one after rotating the secret. */
  expected: string;
  /** Every request received, authorized or not. */
  readonly requests: SeenRequest[];
  /** TLS handshakes that failed (HTTPS only): proves a client did connect. */
  readonly tlsErrors: number;
  /** How many `/sse` events have been written so far, and whether the last one has. */
  readonly sse: { written: number; ended: boolean };
  /** Lets a held `/sse` response write its remaining events. */
  releaseSse(): void;
  close(): Promise<void>;
}

/** A certificate and key (PEM). */
export interface TlsFiles {
  readonly key: Buffer;
  readonly cert: Buffer;
}

const CHUNK = 64 * 1024;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts the upstream; `tls` makes it HTTPS. */
export async function startUpstream(expected: string, tls?: TlsFiles): Promise<Upstream> {
  const requests: SeenRequest[] = [];
  const sse = { written: 0, ended: false };
  let release: () => void = () => undefined;
  let released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let tlsErrors = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://upstream");
    const authorized = req.headers.authorization === `Bearer ${upstream.expected}`;
    requests.push({
      method: req.method ?? "",
      path: url.pathname,
      query: url.search.slice(1),
      headers: req.headers,
      authorized,
    });
    if (!authorized) {
      req.resume();
      sendJson(res, 401, { error: "unauthorized" });
      return;
    }
    // `/echo-json/<anything>` too, so a test can tell its calls apart in the broker's log.
    const endpoint = url.pathname.startsWith("/echo-json/") ? "/echo-json" : url.pathname;
    switch (endpoint) {
      case "/echo-json": {
        const hash = createHash("sha256");
        let length = 0;
        for await (const chunk of req as AsyncIterable<Buffer>) {
          hash.update(chunk);
          length += chunk.length;
        }
        sendJson(res, 200, {
          method: req.method,
          path: url.pathname,
          query: url.search.slice(1),
          length,
          sha256: hash.digest("hex"),
        });
        return;
      }
      case "/sse": {
        req.resume();
        const count = Number(url.searchParams.get("n") ?? "3");
        const delay = Number(url.searchParams.get("delay") ?? "20");
        sse.written = 0;
        sse.ended = false;
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.flushHeaders();
        for (let i = 1; i <= count; i++) {
          // Everything after the first event waits for the test: the stream stays open meanwhile.
          if (i === 2) await released;
          else if (i > 2) await sleep(delay);
          res.write(`data: event ${i}\n\n`);
          sse.written = i;
        }
        sse.ended = true;
        res.end();
        return;
      }
      case "/big": {
        req.resume();
        const body = randomBytes(Number(url.searchParams.get("size") ?? String(CHUNK)));
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "x-body-sha256": createHash("sha256").update(body).digest("hex"),
        });
        // No content-length: chunked, written piece by piece with back-pressure.
        const chunks = Readable.from(
          (function* () {
            for (let at = 0; at < body.length; at += CHUNK) yield body.subarray(at, at + CHUNK);
          })(),
        );
        chunks.pipe(res);
        return;
      }
      case "/redirect": {
        req.resume();
        res.writeHead(302, { location: url.searchParams.get("to") ?? "/", "content-length": 0 });
        res.end();
        return;
      }
      case "/leak": {
        req.resume();
        const credential = req.headers.authorization ?? "";
        res.setHeader("x-echo", credential);
        sendJson(res, 200, { echo: credential });
        return;
      }
      default:
        req.resume();
        sendJson(res, 404, { error: "no such endpoint" });
    }
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => res.destroy());
  };
  const server =
    tls === undefined
      ? http.createServer(listener)
      : https.createServer({ key: tls.key, cert: tls.cert }, listener);
  server.on("tlsClientError", () => {
    tlsErrors++;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  const upstream: Upstream = {
    url: `${tls === undefined ? "http" : "https"}://${host}`,
    host,
    expected,
    requests,
    get tlsErrors() {
      return tlsErrors;
    },
    sse,
    releaseSse() {
      release();
      released = new Promise<void>((resolve) => {
        release = resolve;
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        release();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return upstream;
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A self-signed P-256 certificate for 127.0.0.1, valid one day, made with openssl in `dir`. */
export async function selfSignedCert(dir: string): Promise<TlsFiles> {
  const key = join(dir, "upstream-key.pem");
  const cert = join(dir, "upstream-cert.pem");
  await promisify(execFile)("/usr/bin/openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    // The name matches: only the missing trust can make the handshake fail.
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-days",
    "1",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  return { key: await readFile(key), cert: await readFile(cert) };
}

/** A response read to the end. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Options of {@link request}. */
export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | Readable;
  readonly timeoutMs?: number;
}

/** Sends a request and returns the response head, its body still streaming. */
export function open(url: string, options: RequestOptions = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers ?? {},
      agent: false,
      timeout: options.timeoutMs ?? 15_000,
    });
    req.on("timeout", () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on("error", reject);
    req.on("response", resolve);
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** Sends a request and reads the whole response. */
export async function request(url: string, options: RequestOptions = {}): Promise<Reply> {
  const res = await open(url, options);
  const chunks: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
}

/** A body of `size` bytes, streamed in 64 KiB pieces; `digest` is its sha256 (hex). */
export function streamedBody(size: number): { body: Readable; digest: string } {
  const bytes = randomBytes(size);
  const body = Readable.from(
    (function* () {
      for (let at = 0; at < bytes.length; at += CHUNK) yield bytes.subarray(at, at + CHUNK);
    })(),
  );
  return { body, digest: createHash("sha256").update(bytes).digest("hex") };
}

/** Reads from `iterator` until `text` holds `pattern`; rejects after `ms`. */
export async function readUntil(
  iterator: AsyncIterator<Buffer>,
  sofar: string,
  pattern: RegExp,
  ms: number,
): Promise<string> {
  const deadline = Date.now() + ms;
  let text = sofar;
  while (!pattern.test(text)) {
    const left = deadline - Date.now();
    const next = await Promise.race([
      iterator.next(),
      new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), Math.max(left, 0))),
    ]);
    if (next === "timeout")
      throw new Error(`no ${pattern} within ${ms} ms; got ${JSON.stringify(text)}`);
    if (next.done === true) break;
    text += next.value.toString("utf8");
  }
  return text;
}
