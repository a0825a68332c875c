import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { CapabilityBook } from "./capability.js";
import { parseRouteSpec } from "./routes.js";
import { parseListen, startBrokerService } from "./serve.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyhole-serve-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const routes = [parseRouteSpec("openai")];
const source = {
  get: () => Promise.reject(new Error("not used")),
  close: () => {},
};

function start(path: string, book = new CapabilityBook()) {
  return startBrokerService({
    routes,
    capabilities: book,
    source,
    listen: { kind: "socket", path },
    log: () => {},
  });
}

function getOverSocket(path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path, path: "/openai/v1/models", headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

test("--listen accepts loopback addresses only", () => {
  assert.deepEqual(parseListen("127.0.0.1:0"), { kind: "tcp", host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListen("[::1]:8201"), { kind: "tcp", host: "::1", port: 8201 });
  for (const bad of ["0.0.0.0:8201", "192.168.1.2:1", "127.0.0.1", "127.0.0.1:65536", ":80", "x:1"])
    assert.throws(
      () => parseListen(bad),
      (e: unknown) => isKeyholeError(e) && e.code === "usage",
      bad,
    );
});

test("a socket is created 0600 and needs a capability; closing revokes it", async () => {
  const path = join(dir, "a.sock");
  const book = new CapabilityBook();
  const service = await start(path, book);
  const cap = book.issue("openai");
  try {
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal(service.url, "http://localhost");
    assert.equal(await getOverSocket(path), 401);
    // Past the capability check, the (failing) secret source answers 502.
    assert.equal(await getOverSocket(path, { authorization: `Bearer ${cap}` }), 502);
  } finally {
    await service.close();
  }
  assert.ok(!book.accepts("openai", [cap]));
});

test("a live socket is not taken over, a stale one is replaced, other files are left alone", async () => {
  const path = join(dir, "b.sock");
  const first = await start(path);
  try {
    await assert.rejects(start(path), /is in use/);
  } finally {
    await first.close();
  }
  // A socket file nobody listens on, as a crashed broker leaves it (exit without close).
  const stale = join(dir, "stale.sock");
  const script = `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`;
  assert.equal(spawnSync(process.execPath, ["-e", script]).status, 0);
  assert.ok((await stat(stale)).isSocket());
  const replaced = await start(stale);
  assert.equal(await getOverSocket(stale), 401);
  await replaced.close();
  const plain = join(dir, "plain.txt");
  await writeFile(plain, "keep me");
  await assert.rejects(start(plain), /not a socket/);
  assert.equal((await stat(plain)).size, 7);
});
