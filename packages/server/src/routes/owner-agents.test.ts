import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AgentView, encodeBase64url, newId } from "@keyhole/core";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { errorCode } from "../test-support/http.js";
import { agentGet, canary, fetchAndOpen, TestOwner } from "../test-support/owner.js";

describe("owner routes: agents", () => {
  let t: TestServer;
  let owner: TestOwner;
  const value = canary();

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", value);
    await owner.putSecret("api", canary());
  });
  after(() => t.close());

  it("POST /v1/owner/agents registers an agent with its grants (201)", async () => {
    const agent = await owner.mintAgent("builder");
    const res = await owner.request(
      "POST",
      "/v1/owner/agents",
      await owner.agentCreateBody(agent, ["db"]),
    );
    assert.equal(res.status, 201);
    const view = res.json as AgentView;
    assert.deepEqual(view, {
      id: agent.id,
      name: "builder",
      enc_pk: encodeBase64url(agent.encPk),
      created_at: agent.createdAt,
      key_sig: encodeBase64url(agent.keySig),
      expires_at: null,
      allowed_cidrs: [],
      revoked_at: null,
      last_used_at: null,
      grant_count: 1,
    });
    const { value: opened } = await fetchAndOpen(t.url, agent, "db");
    assert.deepEqual(opened, value);
  });

  it("GET /v1/owner/agents and /:name show agents and their grants", async () => {
    const list = await owner.request("GET", "/v1/owner/agents");
    assert.equal(list.status, 200);
    const agents = (list.json as { agents: AgentView[] }).agents;
    assert.deepEqual(
      agents.map((a) => a.name),
      ["builder"],
    );
    assert.ok((agents[0]?.last_used_at ?? 0) > 0, "the fetch above stamped last_used_at");
    const one = await owner.request("GET", "/v1/owner/agents/builder");
    assert.equal(one.status, 200);
    const body = one.json as AgentView & {
      grants: { secret_name: string; agent_name: string; version: number }[];
    };
    assert.deepEqual(
      body.grants.map((g) => [g.agent_name, g.secret_name, g.version]),
      [["builder", "db", 1]],
    );
    assert.equal((await owner.request("GET", "/v1/owner/agents/nobody")).status, 404);
  });

  it("refuses a key_sig or grant signature that does not verify (400), storing nothing", async () => {
    const agent = await owner.mintAgent("forged");
    const body = await owner.agentCreateBody(agent, ["db"]);
    const badKey = await owner.request("POST", "/v1/owner/agents", {
      ...body,
      key_sig: encodeBase64url(new Uint8Array(64)),
    });
    assert.equal(badKey.status, 400);
    const grants = body.grants as { sig: string }[];
    const badGrant = await owner.request("POST", "/v1/owner/agents", {
      ...body,
      grants: [{ ...grants[0], sig: encodeBase64url(new Uint8Array(64)) }],
    });
    assert.equal(badGrant.status, 400);
    const otherAgent = await owner.mintAgent("forged");
    const misaddressed = await owner.request("POST", "/v1/owner/agents", {
      ...body,
      grants: (await owner.agentCreateBody(otherAgent, ["db"])).grants,
    });
    assert.equal(misaddressed.status, 400);
    assert.equal((await owner.request("GET", "/v1/owner/agents/forged")).status, 404);
  });

  it("refuses a key stamped more than 5 minutes past the server clock (create and rotate)", async () => {
    const now = t.clock.now();
    const minted = async (name: string, id?: string) => {
      t.clock.t = now + 6 * 60_000;
      try {
        return await owner.mintAgent(name, id);
      } finally {
        t.clock.t = now;
      }
    };
    const create = await owner.agentCreateBody(await minted("future"));
    const created = await owner.request("POST", "/v1/owner/agents", create);
    assert.equal(created.status, 400);
    assert.match(created.text, /created_at is in the future/);
    const live = await owner.createAgent("clocked");
    const body = await owner.agentCreateBody(await minted("clocked", live.id));
    const { id: _i, name: _n, expires_at: _e, allowed_cidrs: _c, ...rotate } = body;
    const rotated = await owner.request("POST", "/v1/owner/agents/clocked/rotate", rotate);
    assert.equal(rotated.status, 400);
    assert.match(rotated.text, /created_at is in the future/);
    assert.equal((await agentGet(t.url, live, "/v1/agent/self")).status, 200);
  });

  it("answers 400 for wrong types, unknown or missing fields and bad base64url", async () => {
    const agent = await owner.mintAgent("typed");
    const body = await owner.agentCreateBody(agent);
    const cases: Record<string, unknown>[] = [
      { ...body, expires_at: "soon" },
      { ...body, created_at: -1 },
      { ...body, created_at: 1.5 },
      { ...body, extra: true },
      { ...body, name: "has space" },
      { ...body, id: "agt_short" },
      { ...body, enc_pk: `${String(body.enc_pk)}=` },
      { ...body, auth_key: "+/+/" },
      { ...body, grants: {} },
      Object.fromEntries(Object.entries(body).filter(([k]) => k !== "token_id")),
    ];
    for (const bad of cases) {
      const res = await owner.request("POST", "/v1/owner/agents", bad);
      assert.equal(res.status, 400, JSON.stringify(Object.keys(bad)));
      assert.equal(errorCode(res), "bad_request");
    }
    assert.equal((await owner.request("POST", "/v1/owner/agents", "[1,2")).status, 400);
    assert.equal((await owner.request("POST", "/v1/owner/agents", [])).status, 400);
    assert.equal((await owner.request("POST", "/v1/owner/agents")).status, 400);
  });

  it("answers 409 for a taken name or token id, and 404 for a grant on an unknown secret", async () => {
    const dup = await owner.mintAgent("builder");
    assert.equal(
      (await owner.request("POST", "/v1/owner/agents", await owner.agentCreateBody(dup))).status,
      409,
    );
    const agent = await owner.mintAgent("unknown-secret");
    const body = await owner.agentCreateBody(agent, ["db"]);
    const grants = body.grants as Record<string, unknown>[];
    const res = await owner.request("POST", "/v1/owner/agents", {
      ...body,
      grants: [{ ...grants[0], secret_id: newId("secret") }],
    });
    assert.equal(res.status, 404);
  });

  it("POST /:name/rotate swaps the token and re-wraps: old token 401, new token reads", async () => {
    const before = await owner.createAgent("rotating", ["db"]);
    const { agent: after, res } = await owner.rotateAgent(before, ["db"]);
    assert.equal(res.status, 200);
    assert.equal((res.json as AgentView).enc_pk, encodeBase64url(after.encPk));
    assert.equal((await agentGet(t.url, before, "/v1/agent/self")).status, 401);
    const { value: opened } = await fetchAndOpen(t.url, after, "db");
    assert.deepEqual(opened, value);
  });

  it("refuses a rotate whose grants differ from the active ones (409) and keeps the old token", async () => {
    const agent = await owner.createAgent("strict", ["db"]);
    const { res } = await owner.rotateAgent(agent, []);
    assert.equal(res.status, 409);
    const { res: extra } = await owner.rotateAgent(agent, ["db", "api"]);
    assert.equal(extra.status, 409);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 200);
    const { res: missing } = await owner.rotateAgent({ ...agent, name: "ghost" }, []);
    assert.equal(missing.status, 404);
  });

  it("refuses a rotate whose key_sig does not verify (400) and keeps the old token", async () => {
    const agent = await owner.createAgent("careful", ["db"]);
    const next = await owner.mintAgent("careful", agent.id);
    const {
      id: _id,
      name: _name,
      expires_at: _e,
      ...body
    } = await owner.agentCreateBody(next, ["db"]);
    const res = await owner.request("POST", "/v1/owner/agents/careful/rotate", {
      ...body,
      key_sig: encodeBase64url(agent.keySig),
    });
    assert.equal(res.status, 400);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 200);
    assert.equal((await agentGet(t.url, next, "/v1/agent/self")).status, 401);
  });

  it("rotates an agent with an expired grant: exactly the active grants, the expired one dropped", async () => {
    const agent = await owner.createAgent("lapsed", ["api"]);
    assert.equal(
      (await owner.grant(agent, "db", { notAfter: t.clock.now() + 60_000 })).status,
      201,
    );
    t.clock.advance(120_000);
    const shown = async () =>
      (
        (await owner.request("GET", "/v1/owner/agents/lapsed")).json as {
          grants: { secret_name: string }[];
        }
      ).grants
        .map((g) => g.secret_name)
        .sort();
    assert.deepEqual(await shown(), ["api", "db"], "the detail still lists the expired grant");
    const { res: withExpired } = await owner.rotateAgent(agent, ["api", "db"]);
    assert.equal(withExpired.status, 409, "an upload for the expired grant is refused");
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 200);
    const { agent: next, res } = await owner.rotateAgent(agent, ["api"]);
    assert.equal(res.status, 200);
    assert.equal((res.json as AgentView).grant_count, 1);
    assert.deepEqual(await shown(), ["api"], "the expired grant is gone");
    assert.notEqual((await fetchAndOpen(t.url, next, "api")).value, null);
    assert.equal((await fetchAndOpen(t.url, next, "db")).res.status, 404);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 401);
  });

  it("POST /:name/revoke reports the blast radius from the audit log", async () => {
    const agent = await owner.createAgent("leaky", ["db", "api"]);
    await fetchAndOpen(t.url, agent, "db");
    await fetchAndOpen(t.url, agent, "db");
    const res = await owner.request("POST", "/v1/owner/agents/leaky/revoke");
    assert.equal(res.status, 200);
    const body = res.json as {
      agent: AgentView;
      blast_radius: {
        secret: string;
        granted: boolean;
        reads: number;
        first_read_at: number | null;
        last_read_at: number | null;
      }[];
    };
    assert.equal(body.agent.revoked_at, t.clock.now());
    assert.equal(body.agent.grant_count, 0);
    const now = t.clock.now();
    assert.deepEqual(body.blast_radius, [
      { secret: "api", granted: true, reads: 0, first_read_at: null, last_read_at: null },
      { secret: "db", granted: true, reads: 2, first_read_at: now, last_read_at: now },
    ]);
    assert.equal((await agentGet(t.url, agent, "/v1/agent/self")).status, 401);
  });

  it("revoke is idempotent, accepts {} as body, refuses other bodies, and 404s an unknown name", async () => {
    const again = await owner.request("POST", "/v1/owner/agents/leaky/revoke", {});
    assert.equal(again.status, 200);
    assert.equal(
      (await owner.request("POST", "/v1/owner/agents/leaky/revoke", { x: 1 })).status,
      400,
    );
    assert.equal((await owner.request("POST", "/v1/owner/agents/nobody/revoke")).status, 404);
  });

  it("lets a revoked agent's name be used again", async () => {
    const reborn = await owner.createAgent("leaky", ["db"]);
    assert.equal((await agentGet(t.url, reborn, "/v1/agent/self")).status, 200);
    const view = (await owner.request("GET", "/v1/owner/agents/leaky")).json as AgentView;
    assert.equal(view.id, reborn.id);
    assert.equal(view.revoked_at, null);
  });
});

describe("owner routes: what a revoke leaves behind", () => {
  let t: TestServer;
  let owner: TestOwner;

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    for (const name of ["db", "api", "unrelated"]) await owner.putSecret(name, canary());
  });
  after(() => t.close());

  const flags = async () =>
    (
      (await owner.request("GET", "/v1/owner/secrets")).json as {
        secrets: { name: string; rotation_recommended: boolean }[];
      }
    ).secrets.map((s) => [s.name, s.rotation_recommended]);

  it("marks every secret the agent could read rotation_recommended, as grant rm does", async () => {
    await owner.createAgent("reader", ["db", "api"]);
    await owner.createAgent("bystander", ["unrelated"]);
    assert.deepEqual(await flags(), [
      ["api", false],
      ["db", false],
      ["unrelated", false],
    ]);
    assert.equal((await owner.request("POST", "/v1/owner/agents/reader/revoke")).status, 200);
    assert.deepEqual(await flags(), [
      ["api", true],
      ["db", true],
      ["unrelated", false],
    ]);
    await owner.putSecret("db", canary());
    assert.equal((await owner.request("POST", "/v1/owner/agents/reader/revoke")).status, 200);
    assert.deepEqual(await flags(), [
      ["api", true],
      ["db", false],
      ["unrelated", false],
    ]);
  });

  it("refuses to register a revoked or rotated-out token id again (409)", async () => {
    const gone = await owner.createAgent("gone");
    assert.equal((await owner.request("POST", "/v1/owner/agents/gone/revoke")).status, 200);
    const copy = await owner.mintAgent("copy");
    const body = await owner.agentCreateBody(copy);
    const reuse = await owner.request("POST", "/v1/owner/agents", {
      ...body,
      token_id: encodeBase64url(gone.tokenId),
    });
    assert.equal(reuse.status, 409);
    const live = await owner.createAgent("live");
    const { agent: next } = await owner.rotateAgent(live, []);
    const again = await owner.mintAgent("live", live.id);
    const rotate = await owner.agentCreateBody(again);
    const { id: _id, name: _name, expires_at: _expires, allowed_cidrs: _cidrs, ...rest } = rotate;
    const back = await owner.request("POST", "/v1/owner/agents/live/rotate", {
      ...rest,
      token_id: encodeBase64url(live.tokenId),
    });
    assert.equal(back.status, 409);
    assert.equal((await agentGet(t.url, next, "/v1/agent/self")).status, 200);
  });
});
