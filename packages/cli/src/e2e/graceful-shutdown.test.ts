// Graceful shutdown (issue 4, Reliability): on SIGTERM the server stops accepting connections at
// once, still answers a request that was in flight (its body half sent when the signal came),
// and exits 0. A request cut off mid-body would be a client-visible failure a deploy should not
// cause.
import assert from "node:assert/strict";
import http from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { cleanEnv, type E2eContext, e2eContext, startServerProcess } from "./harness.js";

let ctx: E2eContext;
before(async () => {
  ctx = await e2eContext();
});
after(() => ctx.cleanup());

/** Resolves with how a plain GET to `url` went: a status, or the connection error's code. */
function probe(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(`${url}/healthz`, (res) => {
      res.resume();
      resolve(String(res.statusCode));
    });
    req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
  });
}

test("SIGTERM: no new connections, the in-flight request is answered, exit 0", async () => {
  const server = await startServerProcess(join(ctx.dir, "data"), cleanEnv(ctx.dir));
  assert.equal(await probe(server.url), "200");

  // A request whose body arrives in two halves, a second apart: in flight when the signal comes.
  const body = Buffer.from(JSON.stringify({ bootstrap_code: "x".repeat(400) }));
  const half = Math.floor(body.length / 2);
  const answered = new Promise<{ status: number; json: unknown }>((resolve, reject) => {
    const req = http.request(`${server.url}/v1/init`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": body.length },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          json: JSON.parse(Buffer.concat(chunks).toString() || "null"),
        }),
      );
    });
    req.on("error", reject);
    req.write(body.subarray(0, half));
    setTimeout(() => req.end(body.subarray(half)), 1_000);
  });
  await sleep(300);
  const exited = server.process.stop("SIGTERM");
  await sleep(200);

  assert.equal(await probe(server.url), "ECONNREFUSED", "no new connections after SIGTERM");
  const reply = await answered;
  assert.ok(reply.status >= 400 && reply.status < 500, `in-flight request got ${reply.status}`);
  assert.equal(typeof (reply.json as { error?: { code?: unknown } }).error?.code, "string");
  const { code, signal } = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.match(server.process.stderr(), /SIGTERM: shutting down/);
});
