/**
 * `@keyhole/sdk/node`: the Node-only parts of the SDK, kept out of the root entry so that the
 * root imports no `node:*` (STYLE.md habit 7). The Vault loads this module with a dynamic
 * `import()` only when it runs on Node: to read a token file, and for a keep-alive `node:http`
 * transport that starts faster than Node 20's global fetch.
 */
import { open } from "node:fs/promises";
import http from "node:http";
import type https from "node:https";
import { type AgentToken, KeyholeError, parseToken, zeroize } from "@keyhole/core";
import { malformedAnswer, networkError, timeoutError } from "./errors.js";
import { concatChunks, type HttpResponse, MAX_RESPONSE_BYTES, type Transport } from "./http.js";

export type { HttpRequest, HttpResponse, Transport } from "./http.js";

/** A token file is one 95-character line; anything this long is not a token file. */
const TOKEN_FILE_MAX_BYTES = 1024;

/**
 * Reads and parses an agent token file. Surrounding whitespace (a trailing newline) is ignored.
 * A missing or unreadable file is `config_error` (naming the path and errno, never content); a
 * file that does not hold exactly one valid token is `invalid_token`. The file's permissions are
 * not checked here: `keyhole agent create --token-file` writes it 0600.
 */
export async function readTokenFile(path: string): Promise<AgentToken> {
  const buffer = new Uint8Array(TOKEN_FILE_MAX_BYTES);
  let length = 0;
  try {
    const handle = await open(path, "r");
    try {
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.length) break;
      }
    } finally {
      await handle.close();
    }
  } catch (error) {
    zeroize(buffer);
    const code = (error as { code?: unknown } | null)?.code;
    const reason = typeof code === "string" && /^E[A-Z]+$/.test(code) ? ` (${code})` : "";
    throw new KeyholeError(
      "config_error",
      `cannot read the agent token file ${path}${reason}; check tokenFile or KEYHOLE_TOKEN_FILE`,
    );
  }
  try {
    if (length === buffer.length) throw new KeyholeError("invalid_token", TOKEN_FILE_INVALID);
    const text = new TextDecoder().decode(buffer.subarray(0, length)).trim();
    try {
      return parseToken(text);
    } catch {
      throw new KeyholeError("invalid_token", TOKEN_FILE_INVALID);
    }
  } finally {
    zeroize(buffer);
  }
}

const TOKEN_FILE_INVALID = "the token file does not hold a valid agent token";

/** What a request needs from `node:http` or `node:https`: its `request` and a keep-alive agent. */
interface HttpClient {
  readonly request: typeof http.request;
  readonly agent: http.Agent;
}

const AGENT_OPTIONS = { keepAlive: true, maxSockets: 16 };

/**
 * A transport over `node:http` / `node:https` with keep-alive agents, so a run of `get` calls
 * reuses one connection. Idle sockets are unref'd by Node's agent and do not hold the process
 * open; `close()` destroys them.
 *
 * `node:https` is loaded on the first https:// request only: it pulls in `node:tls` and all of
 * `node:crypto` (about 3 ms of a cold start), which an agent talking to a loopback http://
 * address never uses.
 */
export function createNodeTransport(): Transport {
  const plain: HttpClient = { request: http.request, agent: new http.Agent(AGENT_OPTIONS) };
  let secure: Promise<HttpClient> | undefined;
  const loadSecure = (): Promise<HttpClient> => {
    secure ??= import("node:https").then(({ default: httpsModule }: { default: typeof https }) => ({
      request: httpsModule.request,
      agent: new httpsModule.Agent(AGENT_OPTIONS),
    }));
    return secure;
  };
  return {
    async request({ url, headers, timeoutMs }) {
      const target = new URL(url);
      const origin = target.origin;
      const client = target.protocol === "https:" ? await loadSecure() : plain;
      return new Promise<HttpResponse>((resolve, reject) => {
        let settled = false;
        let timer: ReturnType<typeof setTimeout> | undefined;
        let req: http.ClientRequest | undefined;
        const finish = (error: KeyholeError | null, response?: HttpResponse) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (error !== null) {
            req?.destroy();
            reject(error);
          } else if (response !== undefined) {
            resolve(response);
          }
        };
        const onResponse = (res: http.IncomingMessage) => {
          const chunks: Uint8Array[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              finish(malformedAnswer("body too large"));
              return;
            }
            chunks.push(chunk);
          });
          res.on("end", () => {
            const retryAfter = res.headers["retry-after"];
            finish(null, {
              status: res.statusCode ?? 0,
              retryAfter: typeof retryAfter === "string" ? retryAfter : null,
              body: concatChunks(chunks, size),
            });
          });
          res.on("error", (error: NodeJS.ErrnoException) =>
            finish(networkError(origin, error.code)),
          );
          res.on("close", () => {
            if (!res.complete) finish(networkError(origin, "ECONNRESET"));
          });
        };
        try {
          req = client.request(target, { method: "GET", headers, agent: client.agent }, onResponse);
        } catch {
          // Only invalid options throw here; Node's message could quote a header, so drop it.
          finish(networkError(origin));
          return;
        }
        req.on("error", (error: NodeJS.ErrnoException) => finish(networkError(origin, error.code)));
        timer = setTimeout(() => finish(timeoutError(origin, timeoutMs)), timeoutMs);
        req.end();
      });
    },
    close() {
      plain.agent.destroy();
      secure?.then((client) => client.agent.destroy()).catch(() => {});
    },
  };
}
