/**
 * SECURITY-TESTS #14, replay. An agent's request carries only its token id and auth key, never
 * the seed its X25519 key comes from. So a captured request, replayed, gets what the agent got:
 * ciphertext, a wrap for the agent's key and the owner's signature, which nothing in the
 * captured bytes can open. Once the token is rotated or revoked, the replay is refused.
 * (Owner requests are signed with a timestamp and a nonce: auth/owner-auth.test.ts.)
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type AgentSecretResponse,
  agentRecipientId,
  concatBytes,
  decodeBase64url,
  deriveRecipientKeyPair,
  isKeyholeError,
  parseAgentAuthorization,
  parseValueEnvelope,
  unwrapDek,
} from "@keyhole/core";
import type { TestServer } from "./test-support/harness.js";
import { call, type HttpCall } from "./test-support/http.js";
import { ownedServer } from "./test-support/owned-server.js";
import { canary, fetchAndOpen, type TestOwner } from "./test-support/owner.js";

/** Every way a value could be written out in a JSON answer. */
function encodings(value: Uint8Array): string[] {
  const b = Buffer.from(value);
  return [b.toString("hex"), b.toString("base64"), b.toString("base64url"), b.toString("latin1")];
}

describe("replay (SECURITY-TESTS #14)", () => {
  let t: TestServer;
  let owner: TestOwner;

  ownedServer((ready) => ({ t, owner } = ready));

  it("a captured agent request, replayed, gets ciphertext that the captured bytes cannot open", async () => {
    const value = canary();
    await owner.putSecret("db", value);
    const agent = await owner.createAgent("ci", ["db"]);
    const captured: HttpCall = {
      method: "GET",
      path: "/v1/agent/secrets/db",
      headers: { authorization: agent.header, "user-agent": "keyhole-sdk" },
    };
    const original = await call(t.url, captured);
    const replayed = await call(t.url, captured);
    assert.equal(replayed.status, 200);
    assert.deepEqual(replayed.json, original.json, "the replay learns nothing new");
    for (const text of encodings(value)) {
      assert.equal(replayed.text.includes(text), false, "the value is in the answer");
    }

    // Everything secret the capture holds: the token id and the auth key. As X25519 key
    // material (alone or together) none of it opens the agent's wrap.
    const body = replayed.json as AgentSecretResponse;
    const ref = { vaultId: body.vault_id, secretId: body.secret_id, version: body.version };
    const envelope = decodeBase64url(body.value);
    const { dekId } = parseValueEnvelope(envelope);
    const header = parseAgentAuthorization(agent.header);
    assert.ok(header !== null);
    for (const ikm of [
      header.authKey,
      concatBytes(header.tokenId, header.authKey),
      concatBytes(header.authKey, header.tokenId),
    ]) {
      const guess = await deriveRecipientKeyPair(ikm);
      await assert.rejects(
        unwrapDek(ref, dekId, agentRecipientId(agent.id), guess, decodeBase64url(body.wrap)),
        (error: unknown) => isKeyholeError(error) && error.code === "decrypt_failed",
      );
    }
    // The agent, holding the seed, opens it.
    assert.deepEqual((await fetchAndOpen(t.url, agent, "db")).value, value);
  });

  it("a captured request replayed after a rotate or a revoke is refused", async () => {
    await owner.putSecret("api", canary());
    const rotated = await owner.createAgent("rotated", ["api"]);
    const revoked = await owner.createAgent("revoked", ["api"]);
    const capture = (header: string): HttpCall => ({
      method: "GET",
      path: "/v1/agent/secrets/api",
      headers: { authorization: header },
    });
    assert.equal((await call(t.url, capture(rotated.header))).status, 200);
    assert.equal((await call(t.url, capture(revoked.header))).status, 200);
    const { agent: next, res } = await owner.rotateAgent(rotated, ["api"]);
    assert.equal(res.status, 200);
    assert.equal((await owner.request("POST", "/v1/owner/agents/revoked/revoke")).status, 200);
    assert.equal((await call(t.url, capture(rotated.header))).status, 401);
    assert.equal((await call(t.url, capture(revoked.header))).status, 401);
    assert.equal((await call(t.url, capture(next.header))).status, 200);
  });
});
