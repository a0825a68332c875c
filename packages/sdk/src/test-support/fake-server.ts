/**
 * A stand-in for the Keyhole server in SDK tests: `node:http` on 127.0.0.1, port 0. By default it
 * serves the agent routes of docs/api.md honestly from fixtures; a test swaps `handler` to play a
 * broken or malicious server. Every request is recorded (headers included) so tests can check
 * what the SDK sent.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ERROR_STATUS, type WireErrorCode } from "@keyhole/core";
import type { SecretVersion, TestAgent } from "./fixtures.js";

/** A request as the handler sees it. */
export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** An answer: `json` is serialised; `raw` is sent as is; `status` defaults to 200. */
export interface FakeReply {
  readonly status?: number;
  readonly json?: unknown;
  readonly raw?: string | Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Answers one request; a test may replace it at any time. */
export type FakeHandler = (request: FakeRequest) => FakeReply | Promise<FakeReply>;

/** The test server. Close it at the end of the test. */
export class FakeServer {
  handler: FakeHandler;
  readonly requests: FakeRequest[] = [];
  readonly #server: http.Server;
  readonly url: string;

  private constructor(server: http.Server, url: string, handler: FakeHandler) {
    this.#server = server;
    this.url = url;
    this.handler = handler;
  }

  /** Starts a server on 127.0.0.1 with an OS-chosen port. */
  static async start(handler: FakeHandler): Promise<FakeServer> {
    let self: FakeServer | undefined;
    const server = http.createServer((req, res) => {
      const request = { method: req.method ?? "", path: req.url ?? "", headers: req.headers };
      self?.requests.push(request);
      Promise.resolve()
        .then(() => (self as FakeServer).handler(request))
        .then((reply) => send(res, reply))
        .catch(() => send(res, errorReply("internal")));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    self = new FakeServer(server, `http://127.0.0.1:${port}`, handler);
    return self;
  }

  /** Stops listening and cuts every connection, kept-alive or hanging. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

function send(res: http.ServerResponse, reply: FakeReply): void {
  const body =
    reply.raw !== undefined
      ? reply.raw
      : reply.json !== undefined
        ? JSON.stringify(reply.json)
        : "";
  res.writeHead(reply.status ?? 200, {
    "content-type": "application/json",
    ...reply.headers,
  });
  res.end(body);
}

/** The error body of docs/api.md with the status from core's table. */
export function errorReply(code: WireErrorCode, headers?: Record<string, string>): FakeReply {
  return {
    status: ERROR_STATUS[code],
    json: { error: { code, message: "fake server error" } },
    ...(headers === undefined ? {} : { headers }),
  };
}

/** A handler that never answers (for timeouts). */
export function hangingHandler(): FakeHandler {
  return () => new Promise<FakeReply>(() => {});
}

/** What the honest handler serves; tests may push new versions while it runs. */
export interface FakeVault {
  readonly agents: TestAgent[];
  readonly secrets: SecretVersion[];
}

/**
 * Serves the agent routes honestly: the Authorization header must be one of the agents' (else
 * 401); an agent sees, for each name, the highest version that has an answer for it (else 404).
 */
export function honestHandler(vault: FakeVault): FakeHandler {
  return ({ method, path, headers }) => {
    const agent = vault.agents.find((a) => a.authorization === headers.authorization);
    if (agent === undefined) return errorReply("unauthenticated");
    if (method !== "GET") return errorReply("not_found");
    if (path === "/v1/agent/secrets") {
      const latest = latestFor(vault, agent);
      return {
        json: { secrets: [...latest.values()].map((s) => ({ name: s.name, version: s.version })) },
      };
    }
    const prefix = "/v1/agent/secrets/";
    if (path.startsWith(prefix)) {
      const name = decodeURIComponent(path.slice(prefix.length));
      const secret = latestFor(vault, agent).get(name);
      const answer = secret?.answers.get(agent.id);
      return answer === undefined ? errorReply("not_found") : { json: answer };
    }
    return errorReply("not_found");
  };
}

function latestFor(vault: FakeVault, agent: TestAgent): Map<string, SecretVersion> {
  const latest = new Map<string, SecretVersion>();
  for (const secret of vault.secrets) {
    if (!secret.answers.has(agent.id)) continue;
    const current = latest.get(secret.name);
    if (current === undefined || secret.version > current.version) latest.set(secret.name, secret);
  }
  return latest;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
