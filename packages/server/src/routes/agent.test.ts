import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type AgentSecretResponse,
  decodeBase64url,
  encodeBase64url,
  fingerprint,
  verifyGrant,
} from "@keyhole/core";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call, errorCode } from "../test-support/http.js";
import { ownedServer } from "../test-support/owned-server.js";
import {
  agentGet,
  canary,
  fetchAndOpen,
  type TestAgent,
  TestOwner,
} from "../test-support/owner.js";

describe("agent routes", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;
  const value = canary();

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("openai-api-key", value);
    await owner.putSecret("other", canary());
    agent = await owner.createAgent("ci", ["openai-api-key"]);
  });
  after(() => t.close());

  it("GET /v1/agent/self names the agent, the vault and the owner key", async () => {
    const res = await agentGet(t.url, agent, "/v1/agent/self");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {
      vault_id: owner.vaultId,
      agent_id: agent.id,
      name: "ci",
      owner_sign_pk: encodeBase64url(owner.signKey.publicKey),
      expires_at: null,
    });
  });

  it("GET /v1/agent/secrets lists only the granted secrets", async () => {
    const res = await agentGet(t.url, agent, "/v1/agent/secrets");
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { secrets: [{ name: "openai-api-key", version: 1 }] });
  });

  it("GET /v1/agent/secrets/:name returns a value, wrap and grant the agent can verify and open", async () => {
    const { res, value: opened } = await fetchAndOpen(t.url, agent, "openai-api-key");
    assert.equal(res.status, 200);
    assert.deepEqual(opened, value);
    const body = res.json as AgentSecretResponse;
    assert.equal(body.vault_id, owner.vaultId);
    assert.equal(body.agent_id, agent.id);
    assert.equal(body.owner_sign_pk, encodeBase64url(owner.signKey.publicKey));
    assert.equal(body.name, "openai-api-key");
    assert.equal(body.version, 1);
    assert.deepEqual(body.grant.allowed_hosts, ["api.example.com"]);
    const envelope = decodeBase64url(body.value);
    const ok = await verifyGrant(
      owner.signKey.publicKey,
      {
        vaultId: body.vault_id,
        secretId: body.secret_id,
        secretName: body.name,
        version: body.version,
        dekId: envelope.subarray(5, 21),
        agentId: agent.id,
        recipientFingerprint: await fingerprint(agent.encPk),
        valueEnvelope: envelope,
        wrap: decodeBase64url(body.wrap),
        issuedAt: body.grant.issued_at,
        notAfter: body.grant.not_after,
        allowedHosts: body.grant.allowed_hosts,
      },
      decodeBase64url(body.grant.sig),
    );
    assert.equal(ok, true);
  });

  it("answers one identical 404 for a missing secret and for one not granted", async () => {
    const missing = await agentGet(t.url, agent, "/v1/agent/secrets/nope");
    const ungranted = await agentGet(t.url, agent, "/v1/agent/secrets/other");
    assert.equal(missing.status, 404);
    assert.equal(ungranted.status, 404);
    assert.deepEqual(missing.json, ungranted.json);
    assert.equal(ungranted.text.includes("value"), false);
  });

  it("serves the new version after the owner rotates the value", async () => {
    const next = canary();
    await owner.putSecret("openai-api-key", next);
    const { res, value: opened } = await fetchAndOpen(t.url, agent, "openai-api-key");
    assert.equal((res.json as AgentSecretResponse).version, 2);
    assert.deepEqual(opened, next);
  });

  it("answers 400 for a bad name, a percent-encoding error, a body or a query on an agent route", async () => {
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/-bad")).status, 400);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/a%ZZ")).status, 400);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self?x=1")).status, 400);
    const withBody = await call(t.url, {
      method: "GET",
      path: "/v1/agent/self",
      headers: { authorization: agent.header },
      body: { a: 1 },
    });
    assert.equal(withBody.status, 400);
    assert.equal(errorCode(withBody), "bad_request");
  });

  it("answers 401 for no credentials, garbage, or a token id with the wrong key", async () => {
    for (const authorization of [
      undefined,
      "Bearer x",
      "Keyhole abc.def",
      `Keyhole ${encodeBase64url(agent.tokenId)}.${encodeBase64url(new Uint8Array(32))}`,
    ]) {
      const res = await call(t.url, {
        method: "GET",
        path: "/v1/agent/self",
        ...(authorization === undefined ? {} : { headers: { authorization } }),
      });
      assert.equal(res.status, 401);
      assert.deepEqual(res.json, {
        error: { code: "unauthenticated", message: "authentication failed" },
      });
    }
  });
});

describe("agent routes: expiry by the server clock", () => {
  let t: TestServer;
  let owner: TestOwner;

  ownedServer((ready) => ({ t, owner } = ready), { secrets: ["s"] });

  it("a grant stops at not_after exactly: 200 one millisecond before, 404 at it", async () => {
    const notAfter = t.clock.now() + 10_000;
    const agent = await owner.createAgent("short-grant", ["s"], { notAfter });
    t.clock.t = notAfter - 1;
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/s")).status, 200);
    t.clock.t = notAfter;
    const res = await agentGet(t.url, agent, "/v1/agent/secrets/s");
    assert.equal(res.status, 404);
    assert.deepEqual((await agentGet(t.url, agent, "/v1/agent/secrets")).json, { secrets: [] });
  });

  it("an agent stops at expires_at exactly: 200 one millisecond before, 401 at it", async () => {
    const expiresAt = t.clock.now() + 10_000;
    const agent = await owner.createAgent("short-agent", ["s"], { expiresAt });
    t.clock.t = expiresAt - 1;
    const self = await agentGet(t.url, agent, "/v1/agent/self");
    assert.equal(self.status, 200);
    assert.equal((self.json as { expires_at: number }).expires_at, expiresAt);
    t.clock.t = expiresAt;
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 401);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/s")).status, 401);
  });
});
