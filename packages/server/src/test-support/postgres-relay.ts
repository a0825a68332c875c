// A TCP relay in front of the PostgreSQL test server, for tests of what the store does when the
// database goes away (down/up) or stops answering (freeze/thaw).
import { createConnection, createServer, type Server, type Socket } from "node:net";

/** A TCP relay to the test server that can be taken down and brought back on the same port. */
export class Relay {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #frozen = false;
  port = 0;

  constructor(url: string) {
    const u = new URL(url);
    this.#target = { host: u.hostname, port: Number(u.port || 5432) };
  }

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection(this.#target);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
      if (this.#frozen) {
        client.pause();
        upstream.pause();
      }
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Refuses new connections and resets the open ones, as a crashed database does. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const socket of this.#sockets) socket.resetAndDestroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  /**
   * Stops passing bytes either way without closing anything: a statement sent now never gets
   * an answer, as when a driver or network hangs. `thaw` lets the bytes through again.
   */
  freeze(): void {
    for (const socket of this.#sockets) socket.pause();
    this.#frozen = true;
  }

  thaw(): void {
    this.#frozen = false;
    for (const socket of this.#sockets) socket.resume();
  }

  url(real: string): string {
    const u = new URL(real);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }
}
