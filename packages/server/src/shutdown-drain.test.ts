/**
 * Graceful shutdown under keep-alive load: once the server is stopping, every answer closes its
 * connection, so busy keep-alive clients cannot hold it open until the forced close (5 s) cuts a
 * request in flight. bench/flood.mjs measures the same at full scale.
 */
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { canary, type TestAgent, TestOwner } from "./test-support/owner.js";

interface Outcome {
  status: number | null;
  connection: string | undefined;
  error: string | null;
}

function get(url: URL, agent: Agent, header: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: "/v1/agent/secrets/db",
        agent,
        headers: { authorization: header },
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            connection: res.headers.connection,
            error: null,
          }),
        );
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) =>
      resolve({
        status: null,
        connection: undefined,
        error: error.code ?? "error",
      }),
    );
    req.end();
  });
}

describe("graceful shutdown under keep-alive load", () => {
  let t: TestServer;
  let reader: TestAgent;

  before(async () => {
    // Each read takes 60-140 ms, at random so the clients do not move in lockstep: requests are
    // in flight when the server is told to stop.
    t = await startTestServer({
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, key, receiver) {
            const value = Reflect.get(target, key, receiver);
            if (typeof value !== "function") return value;
            if (key !== "getSecretForAgent") return value.bind(target);
            return async (...args: unknown[]) => {
              await new Promise((resolve) => setTimeout(resolve, 60 + Math.random() * 80));
              return value.apply(target, args);
            };
          },
        }),
    });
    const owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    reader = await owner.createAgent("reader", ["db"]);
  });
  after(() => t.close());

  it("answers what it received, closes each connection after its answer, stops fast", async () => {
    const url = new URL(t.url);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });
    let stop = false;
    const outcomes: Outcome[] = [];
    const loops = Array.from({ length: 16 }, async () => {
      while (!stop) {
        const outcome = await get(url, keepAlive, reader.header);
        outcomes.push(outcome);
        if (outcome.error !== null) return;
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 330));
    const started = performance.now();
    await t.server.close();
    const closeMs = performance.now() - started;
    stop = true;
    await Promise.all(loops);
    keepAlive.destroy();

    const answered = outcomes.filter((o) => o.status !== null);
    assert.ok(answered.length > 16, `only ${answered.length} answers`);
    assert.ok(
      answered.every((o) => o.status === 200),
      "every answer is a 200",
    );
    // Answers given after the drain began say so, and the connection ends with them.
    const drained = answered.filter((o) => o.connection === "close");
    assert.ok(drained.length >= 1, "some answers came after the drain began");
    // Not asserted: a request the client sends on an idle keep-alive connection just as the
    // server closes it is reset (the HTTP/1.1 keep-alive race; clients retry such requests).
    // What the drain guarantees is that a request the server is working on is answered, and
    // that its connection then ends instead of carrying the next request.
    // Well before the 5 s forced close: no connection was kept busy until it.
    assert.ok(closeMs < 3_000, `close took ${Math.round(closeMs)} ms`);
  });
});
