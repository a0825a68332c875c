import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { encodeBase64url, type GrantView, newId } from "@keyhole/core";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { canary, fetchAndOpen, type TestAgent, TestOwner } from "../test-support/owner.js";

describe("owner routes: grants", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;
  const value = canary();

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", value);
    await owner.putSecret("api", canary());
    agent = await owner.createAgent("ci");
  });
  after(() => t.close());

  it("POST /v1/owner/grants grants a secret (201) the agent can then open", async () => {
    const res = await owner.grant(agent, "db", { allowedHosts: ["db.internal:5432"] });
    assert.equal(res.status, 201);
    const view = res.json as GrantView;
    assert.deepEqual(
      { ...view, issued_at: 0, created_at: 0 },
      {
        agent_id: agent.id,
        agent_name: "ci",
        secret_id: view.secret_id,
        secret_name: "db",
        version: 1,
        issued_at: 0,
        not_after: 0,
        allowed_hosts: ["db.internal:5432"],
        created_at: 0,
        max_uses: 0,
        uses: 0,
      },
    );
    assert.deepEqual((await fetchAndOpen(t.url, agent, "db")).value, value);
  });

  it("replaces the grant of the same pair", async () => {
    const notAfter = t.clock.now() + 60_000;
    assert.equal((await owner.grant(agent, "db", { notAfter })).status, 201);
    const list = await owner.request("GET", "/v1/owner/grants");
    const grants = (list.json as { grants: GrantView[] }).grants;
    assert.equal(grants.length, 1);
    assert.equal(grants[0]?.not_after, notAfter);
  });

  it("refuses a bad signature or an already expired grant (400)", async () => {
    const secret = await owner.openSecret("api");
    const upload = await owner.grantUpload(secret, agent);
    const bad = await owner.request("POST", "/v1/owner/grants", {
      ...upload,
      max_uses: 0,
      sig: encodeBase64url(new Uint8Array(64)),
    });
    assert.equal(bad.status, 400);
    const expired = await owner.grantUpload(secret, agent, { notAfter: t.clock.now() });
    assert.equal(
      (await owner.request("POST", "/v1/owner/grants", { ...expired, max_uses: 0 })).status,
      400,
    );
    const wrongVersion = await owner.request("POST", "/v1/owner/grants", {
      ...upload,
      max_uses: 0,
      version: 0,
    });
    assert.equal(wrongVersion.status, 400);
  });

  it("answers 404 for an unknown agent or secret and 409 for a stale version", async () => {
    const secret = await owner.openSecret("api");
    const upload = await owner.grantUpload(secret, agent);
    assert.equal(
      (
        await owner.request("POST", "/v1/owner/grants", {
          ...upload,
          max_uses: 0,
          agent_id: newId("agent"),
        })
      ).status,
      404,
    );
    assert.equal(
      (
        await owner.request("POST", "/v1/owner/grants", {
          ...upload,
          max_uses: 0,
          secret_id: newId("secret"),
        })
      ).status,
      404,
    );
    await owner.putSecret("api", canary());
    assert.equal(
      (await owner.request("POST", "/v1/owner/grants", { ...upload, max_uses: 0 })).status,
      409,
    );
  });

  it("GET ?agent=NAME filters; an unknown name lists nothing; a bad name is 400", async () => {
    const other = await owner.createAgent("other", ["api"]);
    const ci = await owner.request("GET", "/v1/owner/grants?agent=ci");
    assert.deepEqual(
      (ci.json as { grants: GrantView[] }).grants.map((g) => g.secret_name),
      ["db"],
    );
    const all = await owner.request("GET", "/v1/owner/grants");
    assert.deepEqual(
      (all.json as { grants: GrantView[] }).grants.map((g) => g.agent_name),
      ["ci", "other"],
    );
    const none = await owner.request("GET", "/v1/owner/grants?agent=nobody");
    assert.deepEqual(none.json, { grants: [] });
    assert.equal((await owner.request("GET", "/v1/owner/grants?agent=%20x")).status, 400);
    assert.equal((await owner.request("GET", "/v1/owner/grants?agent=ci&agent=other")).status, 400);
    assert.equal((await owner.request("GET", "/v1/owner/grants?secret=db")).status, 400);
    assert.ok(other);
  });

  it("DELETE /:agent/:secret removes the grant and marks the secret rotation-recommended", async () => {
    const res = await owner.request("DELETE", "/v1/owner/grants/ci/db");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { deleted: true });
    assert.equal((await fetchAndOpen(t.url, agent, "db")).res.status, 404);
    assert.equal((await owner.openSecret("db")).view.rotation_recommended, true);
    assert.equal((await owner.request("DELETE", "/v1/owner/grants/ci/db")).status, 404);
    assert.equal((await owner.request("DELETE", "/v1/owner/grants/nobody/db")).status, 404);
    assert.equal((await owner.request("DELETE", "/v1/owner/grants/ci/nothing")).status, 404);
  });
});
