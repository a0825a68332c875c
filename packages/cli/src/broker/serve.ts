/**
 * The broker as a running service: an HTTP server on a loopback address or a Unix socket, the
 * proxy handler behind it, and the capability check in front of it. Closing it revokes every
 * capability first, so a request racing the shutdown is refused rather than served.
 */
import { lstatSync, unlinkSync } from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { KeyholeError } from "@keyhole/core";
import { type CapabilityBook, presentedCapabilities } from "./capability.js";
import { createBrokerHandler } from "./proxy.js";
import { isLoopbackHost, type Route } from "./routes.js";
import type { SecretSource } from "./vault-source.js";

/** Where the broker listens: a loopback address and port (0 = any free), or a socket path. */
export type BrokerListen =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "socket"; readonly path: string };

/** Options for {@link startBrokerService}. */
export interface BrokerServiceOptions {
  readonly routes: readonly Route[];
  readonly capabilities: CapabilityBook;
  readonly source: SecretSource;
  readonly listen: BrokerListen;
  readonly log: (line: string) => void;
  readonly allowPlainHttpLoopbackUpstream?: boolean;
  readonly upstreamTimeoutMs?: number;
}

/** A listening broker. */
export interface BrokerService {
  /** `http://127.0.0.1:PORT`, or `http://localhost` for a socket (clients connect to the path). */
  readonly url: string;
  close(): Promise<void>;
}

/** Parses `--listen HOST:PORT`; only loopback addresses, so the broker is never on the network. */
export function parseListen(text: string): BrokerListen {
  const match = /^(\[::1\]|[^:[\]]+):(0|[1-9][0-9]{0,4})$/.exec(text);
  const host = match?.[1] ?? "";
  const port = Number(match?.[2]);
  if (match === null || port > 65535)
    throw new KeyholeError("usage", "--listen must be HOST:PORT, e.g. 127.0.0.1:8201");
  if (!isLoopbackHost(host))
    throw new KeyholeError("usage", "--listen must be a loopback address (127.0.0.1, [::1])");
  return { kind: "tcp", host: host.replace(/^\[|\]$/g, ""), port };
}

// A stale socket from a crashed broker is replaced; a live one, or any other file, is left alone.
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new KeyholeError("config_error", `${path} exists and is not a socket`);
  // Only a refused connection proves nobody listens; EACCES (another user's live socket), a
  // full backlog or anything else leaves the path alone.
  const stale = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(false);
    });
    probe.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
  if (!stale) throw new KeyholeError("config_error", `${path} is in use (another broker?)`);
  unlinkSync(path);
}

/** Starts the broker and resolves once it listens. */
export async function startBrokerService(options: BrokerServiceOptions): Promise<BrokerService> {
  const { capabilities } = options;
  const handler = createBrokerHandler({
    routes: options.routes,
    authorize: (route, req, query) =>
      capabilities.accepts(route.name, presentedCapabilities(route, req.headers, query)),
    getSecret: (route) => options.source.get(route),
    log: options.log,
    ...(options.allowPlainHttpLoopbackUpstream === true
      ? { allowPlainHttpLoopbackUpstream: true }
      : {}),
    ...(options.upstreamTimeoutMs === undefined
      ? {}
      : { upstreamTimeoutMs: options.upstreamTimeoutMs }),
  });
  const server = http.createServer(handler);
  const listen = options.listen;
  if (listen.kind === "socket") await clearStaleSocket(listen.path);
  // The socket is created 0600 (umask), not chmod-ed after a window in which anyone could connect.
  const umask = listen.kind === "socket" ? process.umask(0o177) : undefined;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (listen.kind === "socket") server.listen(listen.path, resolve);
    else server.listen(listen.port, listen.host, resolve);
  })
    .finally(() => {
      if (umask !== undefined) process.umask(umask);
    })
    .catch((error: unknown) => {
      handler.close();
      const code = (error as { code?: unknown }).code;
      if (code === "EADDRINUSE") throw new KeyholeError("config_error", "the address is in use");
      throw error;
    });
  const url =
    listen.kind === "socket"
      ? "http://localhost"
      : `http://${listen.host.includes(":") ? `[${listen.host}]` : listen.host}:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        capabilities.revokeAll();
        server.close(() => resolve());
        server.closeAllConnections();
        handler.close();
        options.source.close();
      }),
  };
}
