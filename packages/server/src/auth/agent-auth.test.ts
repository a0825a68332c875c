import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { encodeBase64url, formatAgentAuthorization } from "@keyhole/core";
import type { AgentRecord, TokenLookup } from "../store/store.js";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { call } from "../test-support/http.js";
import { canary, type TestAgent, TestOwner } from "../test-support/owner.js";
import { authenticateAgent } from "./agent-auth.js";
import { computeVerifier, PepperRing } from "./pepper.js";

const SOURCE = fileURLToPath(new URL("../../src/auth/agent-auth.ts", import.meta.url));

describe("agent authentication is timing-safe (SECURITY-TESTS #11)", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("s", canary());
    agent = await owner.createAgent("ci", ["s"]);
  });
  after(() => t.close());

  it("gives an unknown token id and a wrong auth key the identical status and body", async () => {
    const unknown = await call(t.url, {
      method: "GET",
      path: "/v1/agent/secrets/s",
      headers: { authorization: formatAgentAuthorization(canary(16), agent.authKey) },
    });
    const wrongKey = await call(t.url, {
      method: "GET",
      path: "/v1/agent/secrets/s",
      headers: { authorization: formatAgentAuthorization(agent.tokenId, canary(32)) },
    });
    assert.equal(unknown.status, 401);
    assert.equal(wrongKey.status, unknown.status);
    assert.equal(wrongKey.text, unknown.text);
    const headerNames = (h: Record<string, unknown>) =>
      Object.keys(h)
        .filter((k) => k !== "date" && k !== "x-request-id")
        .sort();
    assert.deepEqual(headerNames(wrongKey.headers), headerNames(unknown.headers));
    assert.equal(wrongKey.headers["content-length"], unknown.headers["content-length"]);
  });

  it("compares verifiers with crypto.timingSafeEqual and nothing else", () => {
    const source = readFileSync(SOURCE, "utf8");
    assert.match(source, /import \{[^}]*\btimingSafeEqual\b[^}]*\} from "node:crypto"/);
    assert.match(source, /timingSafeEqual\(computed, expected\)/);
    // No early-exit comparison of the verifier anywhere in the file.
    assert.doesNotMatch(
      source,
      /verifier\s*===|===\s*(lookup\.)?verifier|equalBytes|Buffer\.compare|\.equals\(/,
    );
  });

  it("runs the same HMAC against a dummy verifier for an unknown token id", () => {
    const source = readFileSync(SOURCE, "utf8");
    assert.match(source, /const expected = usable \? lookup\.verifier : DUMMY_VERIFIER;/);
    assert.match(source, /const computed = computeVerifier\(/);
  });

  it("checks the revoked-token list only after the HMAC and comparison", () => {
    const source = readFileSync(SOURCE, "utf8");
    const compare = source.indexOf("timingSafeEqual(computed, expected)");
    const deny = source.indexOf("deps.revoked.has(tokenId)");
    assert.ok(compare > 0 && deny > compare);
  });
});

describe("authenticateAgent", () => {
  const peppers = new PepperRing(canary(32));
  const tokenId = canary(16);
  const authKey = canary(32);
  const agent: AgentRecord = {
    id: "agt_AAAAAAAAAAAAAAAAAAAAAA",
    name: "a",
    encPk: canary(32),
    createdAt: 0,
    keySig: canary(64),
    expiresAt: 1000,
    allowedCidrs: [],
    revokedAt: null,
    lastUsedAt: null,
    registeredAt: 0,
  };
  const lookup: TokenLookup = {
    agent,
    verifier: computeVerifier(peppers.current.key, tokenId, authKey),
    pepperKid: peppers.current.kid,
  };
  const retiredId = canary(16);
  const store = {
    findAgentByTokenId: async (id: Uint8Array) =>
      encodeBase64url(id) === encodeBase64url(tokenId) ? lookup : null,
    findRetiredTokenAgent: async (id: Uint8Array) =>
      encodeBase64url(id) === encodeBase64url(retiredId) ? agent.id : null,
  };
  const header = (id: Uint8Array, key: Uint8Array) => formatAgentAuthorization(id, key);
  const revoked = { has: (_id: Uint8Array) => false };

  it("accepts the right key before expiry and says why it refuses otherwise", async () => {
    const ok = await authenticateAgent(header(tokenId, authKey), {
      store,
      peppers,
      revoked,
      now: 999,
    });
    assert.equal(ok.ok, true);
    const reasons = await Promise.all([
      authenticateAgent(header(tokenId, canary(32)), { store, peppers, revoked, now: 0 }),
      authenticateAgent(header(canary(16), authKey), { store, peppers, revoked, now: 0 }),
      authenticateAgent(header(tokenId, authKey), { store, peppers, revoked, now: 1000 }),
      authenticateAgent("Keyhole nope", { store, peppers, revoked, now: 0 }),
    ]);
    assert.deepEqual(
      reasons.map((r) => (r.ok ? "ok" : r.reason)),
      ["bad_key", "unknown_token", "expired", "malformed"],
    );
  });

  it("refuses a token id on the revoked list even with the right key, after the same lookup", async () => {
    const lookedUp: string[] = [];
    const spy = {
      ...store,
      findAgentByTokenId: async (id: Uint8Array) => {
        lookedUp.push(encodeBase64url(id));
        return store.findAgentByTokenId(id);
      },
    };
    const denied = { has: (id: Uint8Array) => encodeBase64url(id) === encodeBase64url(tokenId) };
    const right = await authenticateAgent(header(tokenId, authKey), {
      store: spy,
      peppers,
      revoked: denied,
      now: 0,
    });
    assert.deepEqual(right.ok ? "ok" : [right.reason, right.agentId], ["retired", agent.id]);
    const wrong = await authenticateAgent(header(tokenId, canary(32)), {
      store: spy,
      peppers,
      revoked: denied,
      now: 0,
    });
    assert.equal(wrong.ok ? "ok" : wrong.reason, "bad_key");
    assert.deepEqual(lookedUp, [encodeBase64url(tokenId), encodeBase64url(tokenId)]);
  });

  it("names the agent of a revoked token id whose row is gone, and no one for an unknown id", async () => {
    const denied = { has: (id: Uint8Array) => encodeBase64url(id) === encodeBase64url(retiredId) };
    const gone = await authenticateAgent(header(retiredId, authKey), {
      store,
      peppers,
      revoked: denied,
      now: 0,
    });
    assert.deepEqual(gone.ok ? "ok" : [gone.reason, gone.agentId], ["retired", agent.id]);
    const unknown = await authenticateAgent(header(canary(16), authKey), {
      store,
      peppers,
      revoked: denied,
      now: 0,
    });
    assert.deepEqual(unknown.ok ? "ok" : [unknown.reason, unknown.agentId], ["unknown_token", ""]);
  });

  it("refuses a verifier made under a pepper the server no longer has", async () => {
    const otherRing = new PepperRing(canary(32));
    const result = await authenticateAgent(header(tokenId, authKey), {
      store,
      peppers: otherRing,
      revoked,
      now: 0,
    });
    assert.equal(result.ok, false);
  });

  it("still verifies verifiers of an older pepper kept in the ring", async () => {
    const rotated = new PepperRing(canary(32), [peppers.current.key]);
    const result = await authenticateAgent(header(tokenId, authKey), {
      store,
      peppers: rotated,
      revoked,
      now: 0,
    });
    assert.equal(result.ok, true);
  });
});
