import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import http, { type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createBrokerHandler, type SecretGrant } from "./proxy.js";
import { type Injection, parseRoute, type Route } from "./routes.js";

const SECRET = `sk-${randomBytes(24).toString("hex")}`;

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; origin: string; port: number }> {
  const server = http.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}`, port };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? "GET", headers: init.headers ?? {} });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.end(init.body);
  });
}

/** Starts a broker in front of `upstream` with one route; returns its origin and captured state. */
async function withBroker(
  upstream: string,
  fn: (broker: string, state: { logs: string[]; grants: Uint8Array[] }) => Promise<void>,
  opts: {
    inject?: Injection;
    allowedHosts?: string[];
    getSecret?: (route: Route) => Promise<SecretGrant>;
    authorize?: () => boolean;
    timeoutMs?: number;
  } = {},
): Promise<void> {
  const route = parseRoute(
    {
      name: "svc",
      prefix: "/svc",
      upstream,
      secret: "svc-key",
      inject: opts.inject ?? {
        kind: "header",
        name: "Authorization",
        template: "Bearer {{secret}}",
      },
    },
    { allowPlainHttpLoopbackUpstream: true },
  );
  const state = { logs: [] as string[], grants: [] as Uint8Array[] };
  const handler = createBrokerHandler({
    routes: [route],
    // Capabilities have their own tests (capability.test.ts); here every caller is authorised.
    authorize: opts.authorize ?? (() => true),
    getSecret:
      opts.getSecret ??
      (async () => {
        const value = new Uint8Array(Buffer.from(SECRET));
        state.grants.push(value);
        return { value, allowedHosts: opts.allowedHosts ?? ["127.0.0.1"] };
      }),
    log: (line) => state.logs.push(line),
    allowPlainHttpLoopbackUpstream: true,
    ...(opts.timeoutMs === undefined ? {} : { upstreamTimeoutMs: opts.timeoutMs }),
  });
  const { server, origin } = await listen(handler);
  try {
    await fn(origin, state);
  } finally {
    handler.close();
    await close(server);
  }
}

function errorCode(reply: Reply): unknown {
  return (JSON.parse(reply.body.toString()) as { error: { code: unknown } }).error.code;
}

test("the credential is injected and the client's own Authorization and x-api-key are replaced", async () => {
  const seen: IncomingMessage[] = [];
  const up = await listen((req, res) => {
    seen.push(req);
    const ok = req.headers.authorization === `Bearer ${SECRET}`;
    res.writeHead(ok ? 200 : 401, { "content-type": "text/plain" });
    res.end(ok ? "ok" : "bad credential");
  });
  try {
    await withBroker(up.origin, async (broker, state) => {
      const reply = await call(`${broker}/svc/v1/chat?stream=1&a=b`, {
        headers: { authorization: "Bearer placeholder", "x-api-key": "placeholder", "x-keep": "1" },
      });
      assert.equal(reply.status, 200);
      assert.equal(reply.body.toString(), "ok");
      const req = seen[0];
      assert.ok(req);
      assert.equal(req.url, "/v1/chat?stream=1&a=b");
      assert.equal(req.headers.host, `127.0.0.1:${up.port}`);
      assert.equal(req.headers["x-api-key"], undefined);
      assert.equal(req.headers["x-keep"], "1");
      await sleep(10);
      assert.equal(state.logs.length, 1);
      assert.match(
        state.logs[0] ?? "",
        /route=svc method=GET host=127\.0\.0\.1:\d+ path=\/v1\/chat /,
      );
      assert.match(state.logs[0] ?? "", /status=200 ms=/);
      for (const line of state.logs) assert.ok(!line.includes(SECRET));
      // The broker zeroes the secret buffer once the call ends.
      assert.ok(state.grants[0]?.every((b) => b === 0));
    });
  } finally {
    await close(up.server);
  }
});

test("query-parameter injection replaces a client-sent parameter of the same name", async () => {
  const urls: string[] = [];
  const up = await listen((req, res) => {
    urls.push(req.url ?? "");
    res.end("ok");
  });
  try {
    await withBroker(
      up.origin,
      async (broker, state) => {
        const reply = await call(`${broker}/svc/data?key=forged&q=x%20y`);
        assert.equal(reply.status, 200);
        const url = new URL(urls[0] ?? "", "http://x");
        assert.equal(url.pathname, "/data");
        assert.deepEqual(url.searchParams.getAll("key"), [SECRET]);
        assert.equal(url.searchParams.get("q"), "x y");
        await sleep(10);
        for (const line of state.logs) assert.ok(!line.includes(SECRET));
      },
      { inject: { kind: "query", param: "key" } },
    );
  } finally {
    await close(up.server);
  }
});

test("a query-injected value is redacted in the encoded form it was sent in, when echoed", async () => {
  const value = "sk ~!'()tilde";
  const up = await listen((req, res) => res.end(`you sent ${req.url}`));
  try {
    await withBroker(
      up.origin,
      async (broker) => {
        const reply = await call(`${broker}/svc/echo?q=1`);
        const body = reply.body.toString();
        assert.equal(reply.status, 200);
        assert.match(body, /key=\*+/);
        for (const form of [value, encodeURIComponent(value), "sk+%7E%21%27%28%29tilde"])
          assert.ok(!body.includes(form), form);
      },
      {
        inject: { kind: "query", param: "key" },
        getSecret: async () => ({
          value: new Uint8Array(Buffer.from(value)),
          allowedHosts: ["127.0.0.1"],
        }),
      },
    );
  } finally {
    await close(up.server);
  }
});

test("a value holding $ patterns is injected literally", async () => {
  const value = "sk-AAAA$`$&$'BBBB";
  const seen: (string | undefined)[] = [];
  const up = await listen((req, res) => {
    seen.push(req.headers.authorization);
    res.end("ok");
  });
  try {
    await withBroker(up.origin, async (broker) => void (await call(`${broker}/svc/x`)), {
      getSecret: async () => ({
        value: new Uint8Array(Buffer.from(value)),
        allowedHosts: ["127.0.0.1"],
      }),
    });
    assert.deepEqual(seen, [`Bearer ${value}`]);
  } finally {
    await close(up.server);
  }
});

// Raw answers a well-behaved node:http server would never send.
const RAW_ANSWERS: Record<string, string> = {
  "/x/gzip": "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\nabcd",
  "/x/te-gzip": "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
  "/x/status": "HTTP/1.1 000 Weird\r\ncontent-length: 0\r\n\r\n",
  "/x/upgrade": "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n",
  "/x/head-gzip": "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\n\r\n",
};

test("a compressed answer, an impossible status or an upgrade is refused, never hangs; the broker stays up", async () => {
  const raw = await new Promise<{ server: net.Server; origin: string }>((resolve) => {
    const server = net.createServer((socket) => {
      socket.once("data", (request) => {
        const path = request.toString().split(" ")[1] ?? "";
        socket.end(RAW_ANSWERS[path] ?? "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
      });
    });
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, origin: `http://127.0.0.1:${port}` });
    });
  });
  try {
    await withBroker(
      raw.origin,
      async (broker) => {
        for (const path of ["/x/gzip", "/x/te-gzip", "/x/status", "/x/upgrade", "/x/gzip"]) {
          const reply = await call(`${broker}/svc${path}`);
          assert.equal(reply.status, 502, path);
          assert.equal(errorCode(reply), "upstream_bad_response", path);
        }
        // No body, nothing to redact: a HEAD answer may name any coding.
        const head = await call(`${broker}/svc/x/head-gzip`, { method: "HEAD" });
        assert.equal(head.status, 200);
      },
      { timeoutMs: 5_000 },
    );
  } finally {
    await new Promise((resolve) => raw.server.close(resolve));
  }
});

test("basic injection sends user:secret, and the secret alone as user when none is set", async () => {
  const auths: (string | undefined)[] = [];
  const up = await listen((req, res) => {
    auths.push(req.headers.authorization);
    res.end("ok");
  });
  try {
    await withBroker(
      up.origin,
      async (broker) => {
        await call(`${broker}/svc/x`, { headers: { authorization: "Basic Zm9yZ2Vk" } });
      },
      { inject: { kind: "basic", user: "bot" } },
    );
    await withBroker(
      up.origin,
      async (broker) => {
        await call(`${broker}/svc/x`);
      },
      { inject: { kind: "basic" } },
    );
    assert.deepEqual(auths, [
      `Basic ${Buffer.from(`bot:${SECRET}`).toString("base64")}`,
      `Basic ${Buffer.from(`${SECRET}:`).toString("base64")}`,
    ]);
  } finally {
    await close(up.server);
  }
});

test("a value that cannot go into a header gets 502 secret_not_injectable; the broker stays up", async () => {
  let hits = 0;
  const up = await listen((_req, res) => {
    hits++;
    res.end("ok");
  });
  const values = ["line one\nline two", SECRET];
  try {
    await withBroker(
      up.origin,
      async (broker) => {
        const bad = await call(`${broker}/svc/x`);
        assert.equal(bad.status, 502);
        assert.equal(errorCode(bad), "secret_not_injectable");
        assert.ok(!bad.body.toString().includes("line one"));
        assert.equal((await call(`${broker}/svc/x`)).status, 200);
      },
      {
        getSecret: async () => ({
          value: new Uint8Array(Buffer.from(values.shift() ?? "")),
          allowedHosts: ["127.0.0.1"],
        }),
      },
    );
    assert.equal(hits, 1);
  } finally {
    await close(up.server);
  }
});

test("a host outside the grant's allowed hosts is refused and the upstream never sees a request", async () => {
  let hits = 0;
  const up = await listen((_req, res) => {
    hits++;
    res.end("ok");
  });
  try {
    await withBroker(
      up.origin,
      async (broker, state) => {
        const reply = await call(`${broker}/svc/v1/x`, { method: "POST", body: Buffer.from("{}") });
        assert.equal(reply.status, 403);
        assert.equal(errorCode(reply), "forbidden");
        assert.ok(!reply.body.toString().includes(SECRET));
        await sleep(10);
        assert.equal(hits, 0);
        assert.ok(state.grants[0]?.every((b) => b === 0));
        assert.match(state.logs[0] ?? "", /status=403/);
      },
      { allowedHosts: ["api.openai.com"] },
    );
  } finally {
    await close(up.server);
  }
});

test("server-sent events reach the client one by one, before the upstream sends the next", async () => {
  let firstSeen: () => void = () => {};
  const seen = new Promise<void>((resolve) => {
    firstSeen = resolve;
  });
  let secondSent = false;
  const up = await listen(async (_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write("data: one\n\n");
    // Wait for the client to see event one; a buffering broker would make this time out.
    await Promise.race([seen, sleep(1500)]);
    secondSent = true;
    res.write("data: two\n\n");
    res.end();
  });
  try {
    await withBroker(up.origin, async (broker) => {
      const events: { text: string; secondSentYet: boolean }[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = http.request(`${broker}/svc/stream`);
        req.on("error", reject);
        req.on("response", (res) => {
          assert.equal(res.headers["content-type"], "text/event-stream");
          res.on("data", (chunk: Buffer) => {
            events.push({ text: chunk.toString(), secondSentYet: secondSent });
            if (chunk.toString().includes("one")) firstSeen();
          });
          res.on("end", resolve);
        });
        req.end();
      });
      assert.equal(events.map((e) => e.text).join(""), "data: one\n\ndata: two\n\n");
      assert.equal(events[0]?.text, "data: one\n\n");
      assert.equal(events[0]?.secondSentYet, false);
    });
  } finally {
    await close(up.server);
  }
});

test("a 5 MiB request body and a 5 MiB response body stream through intact", async () => {
  const size = 5 * 1024 * 1024;
  const requestBody = randomBytes(size);
  const responseBody = randomBytes(size);
  const up = await listen((req, res) => {
    const hash = createHash("sha256");
    let length = 0;
    req.on("data", (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    req.on("end", () => {
      res.writeHead(200, { "x-request-sha256": hash.digest("hex"), "x-request-length": length });
      // In pieces, so the response is chunked and streamed.
      let at = 0;
      const pump = (): void => {
        while (at < size) {
          const piece = responseBody.subarray(at, at + 65536);
          at += piece.length;
          if (!res.write(piece)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
  });
  try {
    await withBroker(up.origin, async (broker) => {
      const reply = await call(`${broker}/svc/upload`, { method: "POST", body: requestBody });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["x-request-length"], String(size));
      assert.equal(
        reply.headers["x-request-sha256"],
        createHash("sha256").update(requestBody).digest("hex"),
      );
      assert.equal(reply.body.length, size);
      assert.equal(
        createHash("sha256").update(reply.body).digest("hex"),
        createHash("sha256").update(responseBody).digest("hex"),
      );
    });
  } finally {
    await close(up.server);
  }
});

test("a redirect to a disallowed host becomes 502, one to an allowed host passes through", async () => {
  const up = await listen((req, res) => {
    const location =
      req.url === "/away" ? "https://evil.example/steal" : `http://127.0.0.1/elsewhere`;
    res.writeHead(302, { location });
    res.end();
  });
  try {
    await withBroker(up.origin, async (broker) => {
      const away = await call(`${broker}/svc/away`);
      assert.equal(away.status, 502);
      assert.equal(errorCode(away), "upstream_redirect_refused");
      assert.equal(away.headers.location, undefined);
      const near = await call(`${broker}/svc/near`);
      assert.equal(near.status, 302);
      assert.equal(near.headers.location, "http://127.0.0.1/elsewhere");
    });
  } finally {
    await close(up.server);
  }
});

test("a secret echoed in a header and in the body, split across chunks, is redacted", async () => {
  const half = SECRET.length >> 1;
  const up = await listen(async (req, res) => {
    const echoed = (req.headers.authorization ?? "").replace("Bearer ", "");
    res.writeHead(200, { "x-echo": `key=${echoed}`, "content-type": "text/plain" });
    res.write(`whole ${echoed} then split `);
    res.write(echoed.slice(0, half));
    await sleep(20);
    res.write(echoed.slice(half, half + 3));
    await sleep(20);
    res.write(`${echoed.slice(half + 3)} end`);
    res.end();
  });
  try {
    await withBroker(up.origin, async (broker) => {
      const reply = await call(`${broker}/svc/echo`);
      const body = reply.body.toString();
      const stars = "*".repeat(SECRET.length);
      assert.equal(reply.headers["x-echo"], `key=${stars}`);
      assert.equal(body, `whole ${stars} then split ${stars} end`);
      assert.ok(!body.includes(SECRET.slice(0, 8)));
    });
  } finally {
    await close(up.server);
  }
});

test("an upstream that is down gets 502 upstream_unreachable, a silent one 504, never a hang", async () => {
  const gone = await listen(() => {});
  const origin = gone.origin;
  await close(gone.server);
  await withBroker(origin, async (broker, state) => {
    const reply = await call(`${broker}/svc/x`);
    assert.equal(reply.status, 502);
    assert.equal(errorCode(reply), "upstream_unreachable");
    await sleep(10);
    assert.match(state.logs[0] ?? "", /status=502/);
  });

  const silent = await listen(() => {});
  try {
    await withBroker(
      silent.origin,
      async (broker) => {
        const reply = await call(`${broker}/svc/x`);
        assert.equal(reply.status, 504);
        assert.equal(errorCode(reply), "upstream_timeout");
      },
      { timeoutMs: 200 },
    );
  } finally {
    await close(silent.server);
  }
});

test("an unknown route gets 404 not_found and no secret is fetched", async () => {
  let fetched = 0;
  await withBroker(
    "http://127.0.0.1:9",
    async (broker, state) => {
      for (const path of ["/nope", "/svcx/a", "/"]) {
        const reply = await call(`${broker}${path}`);
        assert.equal(reply.status, 404, path);
        assert.equal(errorCode(reply), "not_found");
      }
      await sleep(10);
      assert.equal(fetched, 0);
      assert.match(state.logs[0] ?? "", /route=- method=GET host=- path=\/nope status=404/);
    },
    {
      getSecret: async () => {
        fetched++;
        return { value: new Uint8Array(Buffer.from(SECRET)), allowedHosts: ["127.0.0.1"] };
      },
    },
  );
});

test("a failed secret fetch gets 502 secret_unavailable, without the error's text", async () => {
  await withBroker(
    "http://127.0.0.1:9",
    async (broker) => {
      const reply = await call(`${broker}/svc/x`);
      assert.equal(reply.status, 502);
      assert.equal(errorCode(reply), "secret_unavailable");
      assert.ok(!reply.body.toString().includes("internal detail 7f3a"));
    },
    {
      getSecret: async () => {
        throw new Error("agent revoked: internal detail 7f3a");
      },
    },
  );
});

test("a request the capability check refuses gets 401 bad_capability and no secret is fetched", async () => {
  let fetched = 0;
  await withBroker(
    "http://127.0.0.1:9",
    async (broker, state) => {
      const reply = await call(`${broker}/svc/x`);
      assert.equal(reply.status, 401);
      assert.equal(errorCode(reply), "bad_capability");
      assert.equal(fetched, 0);
      await sleep(10);
      assert.match(
        state.logs[0] ?? "",
        /route=svc method=GET host=127\.0\.0\.1:9 path=\/x status=401/,
      );
    },
    {
      authorize: () => false,
      getSecret: async () => {
        fetched++;
        return { value: new Uint8Array(Buffer.from(SECRET)), allowedHosts: ["127.0.0.1"] };
      },
    },
  );
});

test("a plain-http upstream is refused unless the test-only flag allows loopback", async () => {
  let hits = 0;
  const up = await listen((_req, res) => {
    hits++;
    res.end("ok");
  });
  const route = parseRoute(
    {
      name: "svc",
      upstream: up.origin,
      secret: "s",
      inject: { kind: "header", name: "x-api-key", template: "{{secret}}" },
    },
    { allowPlainHttpLoopbackUpstream: true },
  );
  const handler = createBrokerHandler({
    routes: [route],
    authorize: () => true,
    getSecret: async () => ({ value: Buffer.from(SECRET), allowedHosts: ["127.0.0.1"] }),
    log: () => {},
  });
  const broker = await listen(handler);
  try {
    const reply = await call(`${broker.origin}/svc/x`);
    assert.equal(reply.status, 403);
    assert.equal(hits, 0);
  } finally {
    handler.close();
    await close(broker.server);
    await close(up.server);
  }
});
