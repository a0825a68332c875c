import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeBase64url, encodeBase64url } from "@keyhole/core";
import type { Store } from "../store/store.js";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call, errorCode } from "../test-support/http.js";
import { TestOwner } from "../test-support/owner.js";

describe("public routes", () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it("GET /healthz answers ok", async () => {
    const res = await call(t.url, { method: "GET", path: "/healthz" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { ok: true });
    assert.match(String(res.headers["x-request-id"]), /^[A-Za-z0-9_-]{16}$/);
    assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  });

  it("GET /v1/info describes an uninitialised vault", async () => {
    const res = await call(t.url, { method: "GET", path: "/v1/info" });
    const info = res.json as Record<string, unknown>;
    assert.equal(res.status, 200);
    assert.equal(info.vault_id, t.server.vaultId);
    assert.match(String(info.vault_id), /^vlt_[A-Za-z0-9_-]{22}$/);
    assert.equal(info.initialized, false);
    assert.equal(info.owner_sign_pk, null);
    assert.equal(decodeBase64url(String(info.audit_pk)).length, 32);
    assert.equal(info.server_version, "0.1.0");
  });
});

describe("readiness: GET /readyz", () => {
  let t: TestServer;
  let store: Store | undefined;
  const fault = { getVault: false };
  before(async () => {
    t = await startTestServer({
      wrapStore: (inner) => {
        store = inner;
        return new Proxy(inner, {
          get(target, key, receiver) {
            if (key === "getVault" && fault.getVault) {
              return () => Promise.reject(new Error("SQLITE_BUSY: kh1_canary-in-message"));
            }
            const value = Reflect.get(target, key, receiver);
            return typeof value === "function" ? value.bind(target) : value;
          },
        });
      },
    });
  });
  after(() => t.close());

  it("answers 200 ready while the store answers", async () => {
    const res = await call(t.url, { method: "GET", path: "/readyz" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { status: "ready" });
  });

  it("answers 503 unavailable when the store fails, while /healthz stays 200", async () => {
    fault.getVault = true;
    try {
      const res = await call(t.url, { method: "GET", path: "/readyz" });
      assert.equal(res.status, 503);
      assert.equal(errorCode(res), "unavailable");
      assert.equal(res.text.includes("canary"), false);
      assert.equal((await call(t.url, { method: "GET", path: "/healthz" })).status, 200);
      const line = t.logs.find((l) => l.includes(String(res.headers["x-request-id"])));
      assert.ok(line);
      assert.equal(t.logs.join("\n").includes("canary"), false);
    } finally {
      fault.getVault = false;
    }
    assert.equal((await call(t.url, { method: "GET", path: "/readyz" })).status, 200);
  });

  it("answers 503 once the store is closed", async () => {
    await store?.close();
    const res = await call(t.url, { method: "GET", path: "/readyz" });
    assert.equal(res.status, 503);
    assert.equal(errorCode(res), "unavailable");
    assert.equal((await call(t.url, { method: "GET", path: "/healthz" })).status, 200);
  });
});

describe("bootstrap: POST /v1/init", () => {
  let t: TestServer;
  let owner: TestOwner;
  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.create(t.url, t.clock.now);
  });
  after(() => t.close());

  it("writes the bootstrap code to a 0600 file at first start", () => {
    assert.match(t.server.bootstrapCode ?? "", /^[0-9a-f]{32}$/);
    assert.ok(existsSync(join(t.dataDir, "bootstrap-code")));
  });

  it("refuses owner routes before init with not_initialized", async () => {
    const res = await call(t.url, { method: "GET", path: "/v1/owner/agents" });
    assert.equal(res.status, 409);
    assert.equal(errorCode(res), "not_initialized");
  });

  it("answers 401 without the code and with a wrong one, and the vault stays uninitialised", async () => {
    const without = await owner.init("");
    assert.equal(without.status, 401);
    const wrong = await owner.init("0".repeat(32));
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.json, without.json);
    assert.equal(errorCode(wrong), "unauthenticated");
    const info = await call(t.url, { method: "GET", path: "/v1/info" });
    assert.equal((info.json as { initialized: boolean }).initialized, false);
  });

  it("answers 400 for a malformed body or a proof by another key", async () => {
    const code = t.server.bootstrapCode ?? "";
    assert.equal((await owner.init(code, { proof: "!!" })).status, 400);
    assert.equal((await owner.init(code, { extra: 1 })).status, 400);
    assert.equal(
      (await owner.init(code, { owner_enc_pk: encodeBase64url(new Uint8Array(31)) })).status,
      400,
    );
    const other = await TestOwner.create(t.url, t.clock.now);
    const res = await owner.init(code, { owner_sign_pk: encodeBase64url(other.signKey.publicKey) });
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), "bad_request");
    assert.ok(existsSync(join(t.dataDir, "bootstrap-code")));
  });

  it("initialises with the right code, deletes the code file and reports the owner key", async () => {
    const res = await owner.init(t.server.bootstrapCode ?? "");
    assert.equal(res.status, 200);
    const body = res.json as { vault_id: string; audit_pk: string };
    assert.equal(body.vault_id, t.server.vaultId);
    assert.equal(decodeBase64url(body.audit_pk).length, 32);
    assert.equal(existsSync(join(t.dataDir, "bootstrap-code")), false);
    const info = (await call(t.url, { method: "GET", path: "/v1/info" })).json as Record<
      string,
      unknown
    >;
    assert.equal(info.initialized, true);
    assert.equal(info.owner_sign_pk, encodeBase64url(owner.signKey.publicKey));
  });

  it("answers a second init with 409 already_initialized", async () => {
    const res = await owner.init(t.server.bootstrapCode ?? "");
    assert.equal(res.status, 409);
    assert.equal(errorCode(res), "already_initialized");
  });

  it("records the init and the failed attempts in the audit log", async () => {
    const res = await owner.request("GET", "/v1/owner/audit");
    const entries = (res.json as { entries: { action: string; result: string; detail: string }[] })
      .entries;
    assert.deepEqual(
      entries.map((e) => [e.action, e.result]),
      [
        ["auth.failed", "unauthenticated"],
        ["vault.init", "ok"],
      ],
    );
    // Two failures within the same second: one entry now, the second counted at the next flush.
    assert.equal(entries[0]?.detail, "reason=bad_bootstrap_code");
  });

  it("does not print a bootstrap code after a restart of an initialised vault", async () => {
    const dataDir = t.dataDir;
    await t.close({ keepDir: true });
    t = await startTestServer({ dataDir, clock: t.clock });
    assert.equal(t.server.bootstrapCode, null);
    owner.url = t.url;
    const res = await owner.request("GET", "/v1/owner/audit");
    const entries = (res.json as { entries: { action: string; detail: string }[] }).entries;
    assert.equal(entries.at(-1)?.action, "auth.failed");
    assert.equal(
      entries.at(-1)?.detail,
      "reason=bad_bootstrap_code suppressed=1",
      "the held-back failure is written at shutdown",
    );
  });
});
