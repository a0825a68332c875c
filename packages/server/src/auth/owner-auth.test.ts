import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call } from "../test-support/http.js";
import { canary, TestOwner } from "../test-support/owner.js";
import { NonceCache } from "./nonce-cache.js";
import { DEFAULT_LIMITS } from "./rate-limit.js";

describe("owner request signatures", () => {
  let t: TestServer;
  let owner: TestOwner;

  before(async () => {
    // Many failures from one address on purpose: keep the rate limit out of the way.
    t = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxFailures: 1000 } });
    owner = await TestOwner.initialized(t);
  });
  after(() => t.close());

  it("accept a timestamp exactly 60 s off either way and refuse 60.001 s", async () => {
    // Past the server's start by more than the window, so only the window decides.
    t.clock.advance(61_000);
    const now = t.clock.now();
    assert.equal(
      (await owner.request("GET", "/v1/owner/agents", undefined, { timestamp: now - 60_000 }))
        .status,
      200,
    );
    assert.equal(
      (await owner.request("GET", "/v1/owner/agents", undefined, { timestamp: now + 60_000 }))
        .status,
      200,
    );
    assert.equal(
      (await owner.request("GET", "/v1/owner/agents", undefined, { timestamp: now - 60_001 }))
        .status,
      401,
    );
    assert.equal(
      (await owner.request("GET", "/v1/owner/agents", undefined, { timestamp: now + 60_001 }))
        .status,
      401,
    );
  });

  it("refuse a replayed nonce within its window", async () => {
    const nonce = canary(16);
    assert.equal(
      (await owner.request("GET", "/v1/owner/agents", undefined, { nonce })).status,
      200,
    );
    assert.equal(
      (await owner.request("GET", "/v1/owner/agents", undefined, { nonce })).status,
      401,
    );
  });

  it("refuse a request whose body, path, query or method differs from what was signed", async () => {
    const body = { x: 1 };
    const tamperedBody = await owner.request("POST", "/v1/owner/grants", body, {
      signedBody: { x: 2 },
    });
    assert.equal(tamperedBody.status, 401);
    const otherPath = await owner.request("GET", "/v1/owner/secrets", undefined, {
      signedPath: "/v1/owner/agents",
    });
    assert.equal(otherPath.status, 401);
    const otherQuery = await owner.request("GET", "/v1/owner/audit?limit=5", undefined, {
      signedPath: "/v1/owner/audit?limit=6",
    });
    assert.equal(otherQuery.status, 401);
    const authorization = await owner.authorization("GET", "/v1/owner/secrets", undefined);
    const otherMethod = await call(t.url, {
      method: "DELETE",
      path: "/v1/owner/secrets/x",
      headers: { authorization },
    });
    assert.equal(otherMethod.status, 401);
  });

  it("refuse a signature by another key and malformed headers", async () => {
    const stranger = await TestOwner.create(t.url, t.clock.now);
    stranger.vaultId = owner.vaultId;
    assert.equal((await stranger.request("GET", "/v1/owner/agents")).status, 401);
    for (const authorization of [
      "Keyhole-Owner",
      "Keyhole-Owner 1.2.3",
      "Keyhole-Owner x.y.z",
      "keyhole-owner 1.AAAA.BBBB",
    ]) {
      assert.equal(
        (await call(t.url, { method: "GET", path: "/v1/owner/agents", headers: { authorization } }))
          .status,
        401,
      );
    }
  });

  it("refuse, after a restart, a request signed before it that the old server accepted", async () => {
    const signedAt = t.clock.now();
    const captured = await owner.authorization("GET", "/v1/owner/agents", undefined);
    const replay = () =>
      call(t.url, {
        method: "GET",
        path: "/v1/owner/agents",
        headers: { authorization: captured },
      });
    assert.equal((await replay()).status, 200);
    assert.equal((await replay()).status, 401, "the nonce cache refuses it before the restart");
    const dataDir = t.dataDir;
    await t.close({ keepDir: true });
    t.clock.advance(1);
    t = await startTestServer({
      dataDir,
      clock: t.clock,
      limits: { ...DEFAULT_LIMITS, maxFailures: 1000 },
    });
    owner.url = t.url;
    // Within the ±60 s window, but signed before this process started: its nonce cache is new.
    assert.ok(t.clock.now() - signedAt <= 60_000);
    assert.equal((await replay()).status, 401);
    const audit = await owner.request("GET", "/v1/owner/audit?limit=1000");
    assert.equal(audit.status, 200, "a request signed now passes");
    const failed = (audit.json as { entries: { action: string; detail: string }[] }).entries.filter(
      (e) => e.action === "auth.failed",
    );
    assert.equal(failed.at(-1)?.detail, "reason=owner_signed_before_start");
    // A client whose clock lags the server's start: refused, then fine once the server's
    // clock has moved past what the client's clock says.
    const lagging = await owner.request("GET", "/v1/owner/agents", undefined, {
      timestamp: t.clock.now() - 1,
    });
    assert.equal(lagging.status, 401);
    t.clock.advance(1_000);
    const retried = await owner.request("GET", "/v1/owner/agents", undefined, {
      timestamp: t.clock.now() - 500,
    });
    assert.equal(retried.status, 200);
  });

  it("refuse a signature for another vault id", async () => {
    const confused = await TestOwner.create(t.url, t.clock.now);
    Object.assign(confused, { signKey: owner.signKey });
    confused.vaultId = "vlt_AAAAAAAAAAAAAAAAAAAAAA";
    assert.equal((await confused.request("GET", "/v1/owner/agents")).status, 401);
  });
});

describe("NonceCache", () => {
  it("remembers a nonce for its TTL, then forgets it", () => {
    const cache = new NonceCache({ since: 0, ttlMs: 120_000, maxEntries: 10 });
    assert.equal(cache.use("a", 0), "fresh");
    assert.equal(cache.use("a", 119_999), "replayed");
    // At the expiry instant itself a request accepted 60 s early still passes the time check.
    assert.equal(cache.use("a", 120_000), "replayed");
    assert.equal(cache.use("a", 120_001), "fresh");
  });

  it("is bounded: when full of live nonces it refuses new ones instead of forgetting", () => {
    const cache = new NonceCache({ since: 0, ttlMs: 1000, maxEntries: 2 });
    assert.equal(cache.use("a", 0), "fresh");
    assert.equal(cache.use("b", 0), "fresh");
    assert.equal(cache.use("c", 1), "full");
    assert.equal(cache.use("a", 2), "replayed");
    assert.equal(cache.use("c", 1000), "full", "a and b are live through their expiry instant");
    assert.equal(cache.use("c", 1001), "fresh");
    assert.equal(cache.size, 1);
  });
});
