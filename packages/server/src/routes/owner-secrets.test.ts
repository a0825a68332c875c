import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeBase64url,
  encodeBase64url,
  parseValueEnvelope,
  type SecretSummary,
  type SecretView,
} from "@keyhole/core";
import Database from "better-sqlite3";
import type { TestServer } from "../test-support/harness.js";
import { errorCode } from "../test-support/http.js";
import { ownedServer } from "../test-support/owned-server.js";
import { canary, fetchAndOpen, type TestAgent, TestOwner } from "../test-support/owner.js";

describe("owner routes: secrets", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;

  ownedServer((ready) => ({ t, owner } = ready));

  it("PUT creates a secret (201) the owner can read back and open", async () => {
    const value = canary();
    const body = await owner.secretPutBody("stripe", value);
    const res = await owner.request("PUT", "/v1/owner/secrets/stripe", body);
    assert.equal(res.status, 201);
    assert.deepEqual(res.json, { id: body.id, name: "stripe", version: 1 });
    const opened = await owner.openSecret("stripe");
    assert.equal(opened.version, 1);
    assert.equal(opened.view.owner_sig, body.owner_sig, "owner_sig comes back unchanged");
    assert.equal(opened.view.rotation_recommended, false);
    assert.deepEqual(opened.view.grants, []);
  });

  it("PUT updates with compare-and-set (200); a stale expected_version is 409", async () => {
    agent = await owner.createAgent("worker", ["stripe"]);
    const stale = await owner.secretPutBody("stripe", canary());
    const next = canary();
    const res = await owner.request(
      "PUT",
      "/v1/owner/secrets/stripe",
      await owner.secretPutBody("stripe", next),
    );
    assert.equal(res.status, 200);
    assert.equal((res.json as { version: number }).version, 2);
    const conflict = await owner.request("PUT", "/v1/owner/secrets/stripe", stale);
    assert.equal(conflict.status, 409);
    assert.equal(errorCode(conflict), "conflict");
    const { value } = await fetchAndOpen(t.url, agent, "stripe");
    assert.deepEqual(value, next, "the grantee got a wrap of the new version");
  });

  it("GET /:name lists the grantees with what the owner needs to re-wrap", async () => {
    const res = await owner.request("GET", "/v1/owner/secrets/stripe");
    const view = res.json as SecretView;
    assert.equal(view.version, 2);
    assert.deepEqual(view.grants, [
      {
        agent_id: agent.id,
        agent_name: "worker",
        enc_pk: encodeBase64url(agent.encPk),
        key_sig: encodeBase64url(agent.keySig),
        agent_created_at: agent.createdAt,
        not_after: 0,
        allowed_hosts: ["api.example.com"],
      },
    ]);
    assert.equal((await owner.request("GET", "/v1/owner/secrets/missing")).status, 404);
  });

  it("PUT whose grants do not cover exactly the active grants is 409", async () => {
    const body = await owner.secretPutBody("stripe", canary());
    const res = await owner.request("PUT", "/v1/owner/secrets/stripe", { ...body, grants: [] });
    assert.equal(res.status, 409);
    const other = await owner.createAgent("bystander");
    const extra = await owner.grantUpload(
      {
        id: String(body.id),
        name: "stripe",
        version: Number(body.version),
        value: new Uint8Array(0),
        dek: new Uint8Array(32),
        dekId: new Uint8Array(16),
      },
      other,
    );
    const res2 = await owner.request("PUT", "/v1/owner/secrets/stripe", {
      ...body,
      grants: [...(body.grants as unknown[]), extra],
    });
    assert.equal(res2.status, 409);
  });

  it("PUT refuses malformed uploads with 400", async () => {
    const body = await owner.secretPutBody("fresh", canary());
    const grantBody = await owner.secretPutBody("stripe", canary());
    const grants = grantBody.grants as Record<string, unknown>[];
    const cases: [string, unknown][] = [
      ["/v1/owner/secrets/fresh", { ...body, version: 3 }],
      ["/v1/owner/secrets/fresh", { ...body, value: encodeBase64url(new Uint8Array(60)) }],
      ["/v1/owner/secrets/fresh", { ...body, value: "not base64!" }],
      ["/v1/owner/secrets/fresh", { ...body, owner_wrap: encodeBase64url(new Uint8Array(101)) }],
      ["/v1/owner/secrets/fresh", { ...body, id: "sec_x" }],
      ["/v1/owner/secrets/fresh", { ...body, expected_version: "0" }],
      ["/v1/owner/secrets/-fresh", body],
      [
        "/v1/owner/secrets/stripe",
        { ...grantBody, grants: [{ ...grants[0], sig: encodeBase64url(new Uint8Array(64)) }] },
      ],
      [
        "/v1/owner/secrets/stripe",
        { ...grantBody, grants: [{ ...grants[0], allowed_hosts: ["B.example", "a.example"] }] },
      ],
      ["/v1/owner/secrets/stripe", { ...grantBody, grants: [grants[0], grants[0]] }],
    ];
    for (const [path, bad] of cases) {
      const res = await owner.request("PUT", path, bad);
      assert.equal(res.status, 400, `${path} ${res.text}`);
    }
    assert.equal((await owner.request("GET", "/v1/owner/secrets/fresh")).status, 404);
  });

  it("PUT without a valid owner_sig over its own wrap is 400 and stores nothing", async () => {
    const body = await owner.secretPutBody("signed", canary());
    const other = await owner.secretPutBody("signed", canary());
    const stranger = await TestOwner.create(t.url, t.clock.now);
    stranger.vaultId = owner.vaultId;
    const value = decodeBase64url(String(body.value));
    const ownerWrap = decodeBase64url(String(body.owner_wrap));
    const statement = {
      id: String(body.id),
      name: "signed",
      version: 1,
      value,
      dekId: parseValueEnvelope(value).dekId,
    };
    const { owner_sig: _sig, ...unsigned } = body;
    const cases: [string, unknown][] = [
      ["missing", unsigned],
      ["null", { ...body, owner_sig: null }],
      ["short", { ...body, owner_sig: encodeBase64url(new Uint8Array(63)) }],
      ["zero", { ...body, owner_sig: encodeBase64url(new Uint8Array(64)) }],
      ["another version's", { ...body, owner_sig: other.owner_sig }],
      [
        "another key's",
        { ...body, owner_sig: encodeBase64url(await stranger.ownerSig(statement, ownerWrap)) },
      ],
      [
        "another name's",
        {
          ...body,
          owner_sig: encodeBase64url(
            await owner.ownerSig({ ...statement, name: "other" }, ownerWrap),
          ),
        },
      ],
    ];
    for (const [what, bad] of cases) {
      const res = await owner.request("PUT", "/v1/owner/secrets/signed", bad);
      assert.equal(res.status, 400, `${what}: ${res.text}`);
    }
    assert.equal((await owner.request("GET", "/v1/owner/secrets/signed")).status, 404);
    assert.equal((await owner.request("PUT", "/v1/owner/secrets/signed", body)).status, 201);
    assert.equal((await owner.request("DELETE", "/v1/owner/secrets/signed")).status, 200);
  });

  it("GET returns owner_sig null for a version stored before the server kept it", async () => {
    const { id } = await owner.putSecret("legacy", canary());
    const db = new Database(t.dbPath);
    try {
      db.prepare("UPDATE secret_versions SET owner_sig = NULL WHERE secret_id = ?").run(id);
    } finally {
      db.close();
    }
    const res = await owner.request("GET", "/v1/owner/secrets/legacy");
    assert.equal(res.status, 200);
    assert.equal((res.json as SecretView).owner_sig, null);
    assert.equal((await owner.request("DELETE", "/v1/owner/secrets/legacy")).status, 200);
  });

  it("PUT with an owner wrap for another key is 400 (the owner could not open it)", async () => {
    const stranger = await TestOwner.create(t.url, t.clock.now);
    stranger.vaultId = owner.vaultId;
    const body = await stranger.secretPutBody("orphan", canary());
    const res = await owner.request("PUT", "/v1/owner/secrets/orphan", body);
    assert.equal(res.status, 400);
  });

  it("PUT of a name that exists, with expected_version 0, is 409", async () => {
    const body = await owner.resignPut(await owner.secretPutBody("brand-new", canary()), "stripe");
    await owner
      .request("PUT", "/v1/owner/secrets/stripe", body)
      .then((r) => assert.equal(r.status, 409));
  });

  it("GET /v1/owner/secrets lists metadata and /history the versions", async () => {
    const list = await owner.request("GET", "/v1/owner/secrets");
    const secrets = (list.json as { secrets: SecretSummary[] }).secrets;
    assert.deepEqual(
      secrets.map((s) => [s.name, s.version, s.grant_count]),
      [["stripe", 2, 1]],
    );
    assert.ok((secrets[0]?.size ?? 0) > 32);
    const history = await owner.request("GET", "/v1/owner/secrets/stripe/history");
    const versions = (history.json as { versions: { version: number; size: number }[] }).versions;
    assert.deepEqual(
      versions.map((v) => v.version),
      [1, 2],
    );
    assert.equal((await owner.request("GET", "/v1/owner/secrets/missing/history")).status, 404);
  });

  it("DELETE removes the secret with its versions and grants; 404 when absent", async () => {
    const res = await owner.request("DELETE", "/v1/owner/secrets/stripe");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { deleted: true });
    assert.equal((await owner.request("GET", "/v1/owner/secrets/stripe")).status, 404);
    assert.equal((await fetchAndOpen(t.url, agent, "stripe")).res.status, 404);
    assert.equal((await owner.request("DELETE", "/v1/owner/secrets/stripe")).status, 404);
  });
});
