// Load (issue 4, Reliability): past its bound of requests in flight the server sheds new ones
// with a coded 503 and Retry-After at once, keeps answering /healthz and /readyz, and serves
// again as soon as the flood drains. The bound is shrunk to 3 here; the flood is requests whose
// bodies trickle in, the cheapest way to hold the server's attention.
import assert from "node:assert/strict";
import http, { type ClientRequest } from "node:http";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { InFlightLimit } from "./http/in-flight.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call, errorCode } from "./test-support/http.js";

let server: TestServer;
before(async () => {
  server = await startTestServer({ maxInFlight: 3 });
});
after(() => server.close());

/** Opens a POST whose body never finishes until `end()` is called; resolves with its status. */
function slowRequest(): { req: ClientRequest; status: Promise<number> } {
  const req = http.request(`${server.url}/v1/init`, {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": 64 },
  });
  const status = new Promise<number>((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
  req.write("{");
  return { req, status };
}

test("the limit admits up to its bound, always admits health checks, and frees on release", () => {
  const limit = new InFlightLimit(2);
  const first = limit.admit("/v1/info");
  const second = limit.admit("/v1/info");
  assert.ok(first !== null && second !== null);
  assert.equal(limit.admit("/v1/info"), null);
  // Health checks are admitted when full, and take no slot: releasing them frees nothing.
  const health = [limit.admit("/healthz"), limit.admit("/readyz")];
  assert.ok(health.every((release) => release !== null));
  assert.equal(limit.inFlight, 2);
  for (const release of health) release?.();
  assert.equal(limit.inFlight, 2);
  assert.equal(limit.admit("/v1/info"), null);
  // A release frees one slot, once: calling it twice does not free another request's slot.
  first();
  first();
  assert.equal(limit.inFlight, 1);
  assert.ok(limit.admit("/v1/info") !== null);
  assert.equal(limit.admit("/v1/info"), null);
});

test("one source holds at most its share of the slots; others are still admitted", () => {
  const limit = new InFlightLimit(10, 100, 3);
  const held = [1, 2, 3].map(() => limit.admit("/v1/info", "203.0.113.5"));
  assert.ok(held.every((release) => release !== null));
  assert.equal(limit.admit("/v1/info", "203.0.113.5"), null, "past its share");
  assert.ok(limit.admit("/v1/info", "198.51.100.7") !== null, "another source");
  assert.ok(limit.admit("/healthz", "203.0.113.5") !== null, "health checks");
  held[0]?.();
  assert.equal(limit.heldBy("203.0.113.5"), 2);
  assert.ok(limit.admit("/v1/info", "203.0.113.5") !== null, "a freed slot is its own again");
  // A request without a body (no source given) is not capped per source.
  assert.ok(limit.admit("/v1/info", null) !== null, "a bodiless request");
  assert.equal(limit.heldBy("203.0.113.5"), 3);
});

test("a flood is shed with 503 + Retry-After, health checks answer, service recovers", async () => {
  const flood = [slowRequest(), slowRequest(), slowRequest()];
  await sleep(200);

  const shed = await call(server.url, { method: "GET", path: "/v1/info" });
  assert.equal(shed.status, 503);
  assert.equal(errorCode(shed), "unavailable");
  assert.equal(shed.headers["retry-after"], "1");
  assert.equal((await call(server.url, { method: "GET", path: "/healthz" })).status, 200);
  assert.equal((await call(server.url, { method: "GET", path: "/readyz" })).status, 200);

  // The flood drains (its bodies end, malformed: 4xx, never 5xx) and service is back.
  for (const { req } of flood) req.end(`"x":1}${" ".repeat(57)}`);
  for (const { status } of flood) {
    const code = await status;
    assert.ok(code >= 400 && code < 500, `flood request got ${code}`);
  }
  assert.equal((await call(server.url, { method: "GET", path: "/v1/info" })).status, 200);
});
