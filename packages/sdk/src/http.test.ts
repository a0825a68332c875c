import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { createFetchTransport, getJson, MAX_RESPONSE_BYTES, type Transport } from "./http.js";
import { createNodeTransport } from "./node.js";
import { closedPort, errorReply, FakeServer, hangingHandler } from "./test-support/fake-server.js";

const HEADERS = {
  authorization: "Keyhole AAAA.BBBB",
  "user-agent": "keyhole-sdk/test",
  accept: "application/json",
};

async function rawServer(
  onRequest: http.RequestListener,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isKeyholeError(error), `not a KeyholeError: ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

const transports: [string, () => Transport][] = [
  ["node:http", createNodeTransport],
  ["fetch", () => createFetchTransport()],
];

for (const [kind, make] of transports) {
  describe(`${kind} transport`, () => {
    const transport = make();
    after(() => transport.close());

    test("sends the given headers and returns status, retry-after and the whole body", async () => {
      const server = await FakeServer.start(() =>
        errorReply("rate_limited", { "retry-after": "7" }),
      );
      try {
        const response = await transport.request({
          url: `${server.url}/v1/agent/secrets`,
          headers: HEADERS,
          timeoutMs: 5000,
        });
        assert.equal(response.status, 429);
        assert.equal(response.retryAfter, "7");
        assert.deepEqual(
          JSON.parse(new TextDecoder().decode(response.body)).error.code,
          "rate_limited",
        );
        const seen = server.requests[0];
        assert.equal(seen?.method, "GET");
        assert.equal(seen?.path, "/v1/agent/secrets");
        assert.equal(seen?.headers.authorization, HEADERS.authorization);
        assert.equal(seen?.headers["user-agent"], HEADERS["user-agent"]);
      } finally {
        await server.close();
      }
    });

    test("does not follow a redirect (it would carry the Authorization header elsewhere)", async () => {
      const elsewhere = await FakeServer.start(() => ({ json: { secrets: [] } }));
      const server = await FakeServer.start(() => ({
        status: 302,
        headers: { location: `${elsewhere.url}/steal` },
      }));
      try {
        await rejectsWith(
          getJson(transport, {
            url: `${server.url}/v1/agent/secrets`,
            headers: HEADERS,
            timeoutMs: 5000,
          }),
          "untrusted_server",
        );
        assert.equal(elsewhere.requests.length, 0);
      } finally {
        await server.close();
        await elsewhere.close();
      }
    });

    test("a closed port is network_error", async () => {
      const port = await closedPort();
      await assert.rejects(
        transport.request({ url: `http://127.0.0.1:${port}/x`, headers: HEADERS, timeoutMs: 5000 }),
        (error: unknown) =>
          isKeyholeError(error) &&
          error.code === "network_error" &&
          /ECONNREFUSED/.test(error.message),
      );
    });

    test("a server that never answers is network_error after timeoutMs", async () => {
      const server = await FakeServer.start(hangingHandler());
      try {
        const started = Date.now();
        await rejectsWith(
          transport.request({ url: `${server.url}/x`, headers: HEADERS, timeoutMs: 150 }),
          "network_error",
        );
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 140 && elapsed < 3000, `elapsed ${elapsed} ms`);
      } finally {
        await server.close();
      }
    });

    test("a body over the size limit is untrusted_server", async () => {
      const server = await FakeServer.start(() => ({
        raw: new Uint8Array(MAX_RESPONSE_BYTES + 1),
      }));
      try {
        await rejectsWith(
          transport.request({ url: `${server.url}/x`, headers: HEADERS, timeoutMs: 5000 }),
          "untrusted_server",
        );
      } finally {
        await server.close();
      }
    });

    test("a connection cut in the middle of the body is network_error", async () => {
      const server = await rawServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"secrets":');
        setTimeout(() => res.socket?.destroy(), 20);
      });
      try {
        await rejectsWith(
          transport.request({ url: `${server.url}/x`, headers: HEADERS, timeoutMs: 5000 }),
          "network_error",
        );
      } finally {
        await server.close();
      }
    });

    test("getJson: a 200 that is not JSON is untrusted_server; an error body is mapped", async () => {
      const server = await FakeServer.start(({ path }) =>
        path === "/html" ? { raw: "<html>" } : errorReply("not_found"),
      );
      try {
        await rejectsWith(
          getJson(transport, { url: `${server.url}/html`, headers: HEADERS, timeoutMs: 5000 }),
          "untrusted_server",
        );
        await rejectsWith(
          getJson(transport, {
            url: `${server.url}/v1/agent/secrets/x`,
            headers: HEADERS,
            timeoutMs: 5000,
          }),
          "not_found",
        );
      } finally {
        await server.close();
      }
    });
  });
}

test("the node:http transport keeps the connection alive between requests", async () => {
  const ports: number[] = [];
  const server = await rawServer((req, res) => {
    ports.push(req.socket.remotePort ?? -1);
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
  const transport = createNodeTransport();
  try {
    for (let i = 0; i < 3; i++) {
      await transport.request({ url: `${server.url}/x`, headers: HEADERS, timeoutMs: 5000 });
    }
    assert.equal(ports.length, 3);
    assert.equal(new Set(ports).size, 1, "one socket for three requests");
  } finally {
    transport.close();
    await server.close();
  }
});
