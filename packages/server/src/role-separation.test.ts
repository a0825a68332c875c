import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AuditEntryView, encodeBase64url } from "@keyhole/core";
import type { Route } from "./http/router.js";
import { agentRoutes } from "./routes/agent.js";
import { ownerAgentRoutes } from "./routes/owner-agents.js";
import { ownerAuditRoutes } from "./routes/owner-audit.js";
import { ownerGrantRoutes } from "./routes/owner-grants.js";
import { ownerSecretRoutes } from "./routes/owner-secrets.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call, errorCode } from "./test-support/http.js";
import { agentGet, canary, fetchAndOpen, type TestAgent, TestOwner } from "./test-support/owner.js";

// The real route tables (built without dependencies: only their shape is read here), so a new
// owner or agent route is covered by these tests without anyone remembering to add it.
const NO_DEPS = {} as never;
const OWNER_ROUTES: Route[] = [
  ...ownerAgentRoutes(NO_DEPS),
  ...ownerSecretRoutes(NO_DEPS),
  ...ownerGrantRoutes(NO_DEPS),
  ...ownerAuditRoutes(NO_DEPS),
];
const AGENT_ROUTES: Route[] = agentRoutes(NO_DEPS);

function concrete(route: Route): string {
  return route.pattern
    .replace(":name", "alpha")
    .replace(":agent", "alpha")
    .replace(":secret", "secret-a");
}

describe("role separation (SECURITY-TESTS #4)", () => {
  let t: TestServer;
  let owner: TestOwner;
  let alpha: TestAgent;
  let beta: TestAgent;
  const valueA = canary();
  const valueB = canary();

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("secret-a", valueA);
    await owner.putSecret("secret-b", valueB);
    alpha = await owner.createAgent("alpha", ["secret-a"]);
    beta = await owner.createAgent("beta", ["secret-b"]);
  });
  after(() => t.close());

  it("covers every owner route of the route table", () => {
    assert.ok(OWNER_ROUTES.length >= 15);
    assert.ok(OWNER_ROUTES.every((r) => r.role === "owner"));
    assert.ok(AGENT_ROUTES.every((r) => r.role === "agent"));
  });

  it("an agent token gets 403 on every owner route, one audit entry each, and changes nothing", async () => {
    const before = await owner.request("GET", "/v1/owner/audit?limit=1000");
    const seen = (before.json as { entries: AuditEntryView[] }).entries.length;
    for (const route of OWNER_ROUTES) {
      const res = await call(t.url, {
        method: route.method,
        path: concrete(route),
        headers: { authorization: alpha.header },
        ...(route.method === "GET" || route.method === "DELETE" ? {} : { body: {} }),
      });
      assert.equal(res.status, 403, `${route.method} ${route.pattern}`);
      assert.equal(errorCode(res), "forbidden");
    }
    const afterward = await owner.request("GET", `/v1/owner/audit?after=${seen}&limit=1000`);
    const entries = (afterward.json as { entries: AuditEntryView[] }).entries;
    assert.equal(entries.length, OWNER_ROUTES.length);
    for (const entry of entries) {
      assert.deepEqual(
        [entry.action, entry.result, entry.actor_type, entry.agent_id],
        ["auth.failed", "denied", "agent", alpha.id],
      );
      assert.match(entry.detail, /^forbidden (GET|POST|PUT|DELETE) \/v1\/owner\//);
    }
    assert.equal((await agentGet(t.url, alpha, "/v1/agent/self")).status, 200);
    assert.deepEqual((await fetchAndOpen(t.url, alpha, "secret-a")).value, valueA);
  });

  it("an owner signature gets 403 on every agent route", async () => {
    for (const route of AGENT_ROUTES) {
      const res = await owner.request(route.method, concrete(route));
      assert.equal(res.status, 403, route.pattern);
      assert.equal(errorCode(res), "forbidden");
    }
  });

  it("agent A asking for a secret granted only to B gets 404 and no ciphertext", async () => {
    const res = await agentGet(t.url, alpha, "/v1/agent/secrets/secret-b");
    assert.equal(res.status, 404);
    assert.deepEqual(Object.keys(res.json as object), ["error"]);
    const own = await fetchAndOpen(t.url, beta, "secret-b");
    const wrap = own.res.json as { wrap: string; value: string };
    assert.equal(res.text.includes(wrap.wrap), false);
    assert.equal(res.text.includes(wrap.value.slice(0, 40)), false);
    const list = await agentGet(t.url, alpha, "/v1/agent/secrets");
    assert.deepEqual(list.json, { secrets: [{ name: "secret-a", version: 1 }] });
  });

  it("B's wrap cannot be planted as A's grant: misaddressed wraps are 400", async () => {
    const secretB = await owner.openSecret("secret-b");
    const forBeta = await owner.grantUpload(secretB, beta);
    const res = await owner.request("POST", "/v1/owner/grants", {
      ...forBeta,
      max_uses: 0,
      agent_id: alpha.id,
    });
    assert.equal(res.status, 400);
    assert.equal((await agentGet(t.url, alpha, "/v1/agent/secrets/secret-b")).status, 404);
  });

  it("owner routes given another thing's id or name refuse instead of acting on it", async () => {
    assert.equal((await owner.request("DELETE", "/v1/owner/grants/alpha/secret-b")).status, 404);
    const body = await owner.secretPutBody("secret-a", canary());
    const secretB = await owner.openSecret("secret-b");
    const swapped = await owner.request(
      "PUT",
      "/v1/owner/secrets/secret-a",
      await owner.resignPut({ ...body, id: secretB.id, grants: [] }, "secret-a"),
    );
    assert.equal(swapped.status, 409);
    const { res } = await owner.rotateAgent(alpha, ["secret-b"]);
    assert.equal(res.status, 409);
    const agentBody = await owner.agentCreateBody(await owner.mintAgent("gamma"), ["secret-a"]);
    const grants = agentBody.grants as Record<string, unknown>[];
    const stolen = await owner.request("POST", "/v1/owner/agents", {
      ...agentBody,
      grants: [{ ...grants[0], agent_id: beta.id }],
    });
    assert.equal(stolen.status, 400);
    assert.deepEqual((await fetchAndOpen(t.url, alpha, "secret-a")).value, valueA);
    assert.deepEqual((await fetchAndOpen(t.url, beta, "secret-b")).value, valueB);
  });

  it("an agent cannot use its token id with another agent's auth key", async () => {
    const res = await call(t.url, {
      method: "GET",
      path: "/v1/agent/self",
      headers: {
        authorization: `Keyhole ${encodeBase64url(alpha.tokenId)}.${encodeBase64url(beta.authKey)}`,
      },
    });
    assert.equal(res.status, 401);
  });
});
