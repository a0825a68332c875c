/**
 * The store contract, part 1: agents, rotation, revocation and agent-facing reads.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newId } from "@keyhole/core";
import {
  bytes,
  type ContractContext,
  grantFor,
  newAgent,
  newToken,
  rejectsWith,
  request,
  secretWrite,
  T0,
} from "./contract-fixtures.js";

/** Registers this part of the contract. */
export function agentContract(c: ContractContext): void {
  describe("agents", () => {
    it("creates an agent with its token and grants, found by token id, id and name", async () => {
      const { agent, token, secret } = await c.setup();
      const lookup = await c.store.findAgentByTokenId(token.tokenId);
      assert.equal(lookup?.agent.id, agent.id);
      assert.deepEqual(lookup?.verifier, token.verifier);
      assert.equal(lookup?.pepperKid, "kid-1");
      const summary = await c.store.getAgent(agent.id, T0);
      assert.equal(summary?.grantCount, 1);
      assert.deepEqual(summary?.encPk, agent.encPk);
      assert.equal(summary?.registeredAt, T0);
      assert.equal((await c.store.findAgentByName("ci", T0))?.id, agent.id);
      assert.deepEqual(await c.store.listAgentIdsByName("ci"), [agent.id]);
      assert.deepEqual(
        (await c.store.listAgents(T0)).map((a) => a.name),
        ["ci"],
      );
      const grants = await c.store.listGrants();
      assert.equal(grants.length, 1);
      assert.equal(grants[0]?.secretId, secret.id);
      assert.equal(grants[0]?.agentName, "ci");
      assert.equal(grants[0]?.secretName, "db-password");
      assert.deepEqual(grants[0]?.allowedHosts, ["api.example.com"]);
    });

    it("returns null for an unknown token id, agent id or name", async () => {
      await c.setup();
      assert.equal(await c.store.findAgentByTokenId(bytes(16)), null);
      assert.equal(await c.store.getAgent(newId("agent"), T0), null);
      assert.equal(await c.store.findAgentByName("nobody", T0), null);
      assert.deepEqual(await c.store.listAgentIdsByName("nobody"), []);
    });

    it("refuses a taken id, active name or token id with conflict and writes nothing", async () => {
      const { agent, token } = await c.setup();
      const head = await c.store.auditHead();
      await rejectsWith(
        c.store.createAgent({ ...newAgent("other"), id: agent.id }, newToken(), [], T0, request()),
        "conflict",
      );
      await rejectsWith(
        c.store.createAgent(newAgent("ci"), newToken(), [], T0, request()),
        "conflict",
      );
      await rejectsWith(
        c.store.createAgent(
          newAgent("other"),
          { ...newToken(), tokenId: token.tokenId },
          [],
          T0,
          request(),
        ),
        "conflict",
      );
      assert.deepEqual(await c.store.auditHead(), head);
      assert.equal((await c.store.listAgents(T0)).length, 1);
    });

    it("refuses a grant at a stale version or on a missing secret", async () => {
      const { secret } = await c.setup();
      const other = newAgent("other");
      await rejectsWith(
        c.store.createAgent(other, newToken(), [grantFor(other, secret.id, 2)], T0, request()),
        "conflict",
      );
      await rejectsWith(
        c.store.createAgent(
          other,
          newToken(),
          [grantFor(other, newId("secret"), 1)],
          T0,
          request(),
        ),
        "conflict",
      );
      assert.equal(await c.store.getAgent(other.id, T0), null);
    });

    it("counts only active grants and treats expiry as exclusive", async () => {
      await c.fresh();
      const secret = secretWrite("s");
      await c.store.putSecretVersion(secret, T0, request());
      const agent = newAgent("temp", { expiresAt: T0 + 1000 });
      await c.store.createAgent(agent, newToken(), [grantFor(agent, secret.id, 1)], T0, request());
      assert.equal((await c.store.getAgent(agent.id, T0 + 999))?.grantCount, 1);
      assert.equal((await c.store.getAgent(agent.id, T0 + 1000))?.grantCount, 0);
      assert.equal((await c.store.listActiveGrantsForSecret(secret.id, T0 + 1000)).length, 0);
    });
  });

  describe("rotate", () => {
    it("swaps key, token and grants in one step: the old token is gone", async () => {
      const { agent, token, secret } = await c.setup();
      const encPk = bytes(32);
      const next = newToken();
      const rotated = await c.store.rotateAgent(
        {
          agentId: agent.id,
          expectedEncPk: agent.encPk,
          encPk,
          createdAt: T0 + 5,
          keySig: bytes(64),
        },
        next,
        [{ ...grantFor(agent, secret.id, 1), agentEncPk: encPk }],
        T0 + 5,
        request({ ts: T0 + 5 }),
      );
      assert.deepEqual(rotated?.agent.encPk, encPk);
      assert.equal(rotated?.agent.createdAt, T0 + 5);
      assert.equal(rotated?.agent.grantCount, 1);
      assert.deepEqual(rotated?.retiredTokenIds, [token.tokenId]);
      assert.equal(await c.store.findAgentByTokenId(token.tokenId), null);
      assert.equal((await c.store.findAgentByTokenId(next.tokenId))?.agent.id, agent.id);
      const grant = (await c.store.listGrants())[0];
      assert.equal(grant?.createdAt, T0, "the grant keeps its creation time");
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.equal(last?.action, "agent.rotate");
      assert.equal(last?.agentId, agent.id);
    });

    it("refuses a rotate that does not cover exactly the active grants", async () => {
      const { agent, token } = await c.setup();
      const encPk = bytes(32);
      await rejectsWith(
        c.store.rotateAgent(
          {
            agentId: agent.id,
            expectedEncPk: agent.encPk,
            encPk,
            createdAt: T0,
            keySig: bytes(64),
          },
          newToken(),
          [],
          T0,
          request(),
        ),
        "conflict",
      );
      assert.equal((await c.store.findAgentByTokenId(token.tokenId))?.agent.id, agent.id);
    });

    it("refuses a rotate against a key that changed meanwhile", async () => {
      const { agent, secret } = await c.setup();
      const encPk = bytes(32);
      await rejectsWith(
        c.store.rotateAgent(
          {
            agentId: agent.id,
            expectedEncPk: bytes(32),
            encPk,
            createdAt: T0,
            keySig: bytes(64),
          },
          newToken(),
          [{ ...grantFor(agent, secret.id, 1), agentEncPk: encPk }],
          T0,
          request(),
        ),
        "conflict",
      );
    });

    it("refuses a rotate to a key older than the current one (a delayed request)", async () => {
      const { agent, secret, token } = await c.setup();
      const encPk = bytes(32);
      await rejectsWith(
        c.store.rotateAgent(
          {
            agentId: agent.id,
            expectedEncPk: agent.encPk,
            encPk,
            createdAt: agent.createdAt - 1,
            keySig: bytes(64),
          },
          newToken(),
          [{ ...grantFor(agent, secret.id, 1), agentEncPk: encPk }],
          T0,
          request(),
        ),
        "conflict",
      );
      assert.equal((await c.store.findAgentByTokenId(token.tokenId))?.agent.id, agent.id);
    });

    it("returns null for an unknown or revoked agent, audited as not_found", async () => {
      const { agent } = await c.setup();
      const update = {
        agentId: newId("agent"),
        expectedEncPk: agent.encPk,
        encPk: bytes(32),
        createdAt: T0,
        keySig: bytes(64),
      };
      assert.equal(await c.store.rotateAgent(update, newToken(), [], T0, request()), null);
      await c.store.revokeAgent(agent.id, T0, request());
      assert.equal(
        await c.store.rotateAgent({ ...update, agentId: agent.id }, newToken(), [], T0, request()),
        null,
      );
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual([last?.action, last?.result], ["agent.rotate", "not_found"]);
    });
  });

  describe("retired token ids", () => {
    it("records the old token of a rotate and of a revoke, never the live one", async () => {
      const { agent, token, secret } = await c.setup();
      assert.deepEqual(await c.store.listRetiredTokenIds(), []);
      const encPk = bytes(32);
      const next = newToken();
      await c.store.rotateAgent(
        { agentId: agent.id, expectedEncPk: agent.encPk, encPk, createdAt: T0, keySig: bytes(64) },
        next,
        [{ ...grantFor(agent, secret.id, 1), agentEncPk: encPk }],
        T0,
        request(),
      );
      assert.deepEqual(await c.store.listRetiredTokenIds(), [token.tokenId]);
      const revoked = await c.store.revokeAgent(agent.id, T0 + 1, request());
      assert.deepEqual(revoked?.retiredTokenIds, [next.tokenId]);
      assert.deepEqual(await c.store.listRetiredTokenIds(), [token.tokenId, next.tokenId]);
      const again = await c.store.revokeAgent(agent.id, T0 + 2, request());
      assert.deepEqual(again?.retiredTokenIds, []);
      assert.equal((await c.store.listRetiredTokenIds()).length, 2);
    });

    it("names the agent a retired token id belonged to, and nothing for a live or unknown id", async () => {
      const { agent, token } = await c.setup();
      assert.equal(await c.store.findRetiredTokenAgent(token.tokenId), null, "still live");
      await c.store.revokeAgent(agent.id, T0, request());
      assert.equal(await c.store.findRetiredTokenAgent(token.tokenId), agent.id);
      assert.equal(await c.store.findRetiredTokenAgent(bytes(16)), null);
    });

    it("refuses to register a retired token id again, for a new agent or a rotate", async () => {
      const { agent, token } = await c.setup();
      await c.store.revokeAgent(agent.id, T0, request());
      const head = await c.store.auditHead();
      const other = newAgent("other");
      await rejectsWith(
        c.store.createAgent(other, { ...newToken(), tokenId: token.tokenId }, [], T0, request()),
        "conflict",
      );
      const live = newAgent("live");
      await c.store.createAgent(live, newToken(), [], T0, request());
      await rejectsWith(
        c.store.rotateAgent(
          {
            agentId: live.id,
            expectedEncPk: live.encPk,
            encPk: bytes(32),
            createdAt: T0,
            keySig: bytes(64),
          },
          { ...newToken(), tokenId: token.tokenId },
          [],
          T0,
          request(),
        ),
        "conflict",
      );
      assert.equal(await c.store.getAgent(other.id, T0), null);
      assert.equal((await c.store.auditHead()).size, head.size + 1);
    });
  });

  describe("revoke", () => {
    it("kills the token, deletes the grants and reports the blast radius from the audit log", async () => {
      const { agent, token, secret, principal } = await c.setup();
      await c.store.getSecretForAgent(principal, "db-password", T0 + 10, request({ ts: T0 + 10 }));
      await c.store.getSecretForAgent(principal, "db-password", T0 + 20, request({ ts: T0 + 20 }));
      const result = await c.store.revokeAgent(agent.id, T0 + 30, request({ ts: T0 + 30 }));
      assert.equal(result?.alreadyRevoked, false);
      assert.equal(result?.agent.revokedAt, T0 + 30);
      assert.equal(result?.agent.grantCount, 0);
      assert.deepEqual(result?.blastRadius, [
        {
          secretId: secret.id,
          secretName: "db-password",
          granted: true,
          reads: 2,
          firstReadAt: T0 + 10,
          lastReadAt: T0 + 20,
        },
      ]);
      assert.equal(await c.store.findAgentByTokenId(token.tokenId), null);
      assert.deepEqual(await c.store.listGrants(), []);
      assert.deepEqual(result?.retiredTokenIds, [token.tokenId]);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual(
        [last?.action, last?.result, last?.agentId],
        ["agent.revoke", "ok", agent.id],
      );
    });

    it("marks every secret it held a grant on rotation-recommended, and no other", async () => {
      const { agent, secret } = await c.setup();
      const expiring = secretWrite("expiring");
      await c.store.putSecretVersion(expiring, T0, request());
      await c.store.addGrant(grantFor(agent, expiring.id, 1, T0 + 10), T0, request());
      await c.store.putSecretVersion(secretWrite("untouched"), T0, request());
      await c.store.revokeAgent(agent.id, T0 + 20, request());
      const flags = (await c.store.listSecrets(T0 + 20)).map((s) => [
        s.name,
        s.rotationRecommended,
      ]);
      assert.deepEqual(flags, [
        ["db-password", true],
        ["expiring", true],
        ["untouched", false],
      ]);
      assert.equal((await c.store.getSecretById(secret.id))?.rotationRecommended, true);
      // A second revoke marks nothing anew (a new version has cleared the flag meanwhile).
      await c.store.putSecretVersion(
        { ...secretWrite("db-password"), id: secret.id, expectedVersion: 1, version: 2 },
        T0 + 21,
        request(),
      );
      await c.store.revokeAgent(agent.id, T0 + 22, request());
      assert.equal((await c.store.getSecretById(secret.id))?.rotationRecommended, false);
    });

    it("is idempotent, lets the name be reused, and prefers the active agent by name", async () => {
      const { agent } = await c.setup();
      await c.store.revokeAgent(agent.id, T0 + 1, request());
      const again = await c.store.revokeAgent(agent.id, T0 + 2, request());
      assert.equal(again?.alreadyRevoked, true);
      assert.equal(again?.agent.revokedAt, T0 + 1);
      assert.equal((await c.store.findAgentByName("ci", T0))?.id, agent.id);
      const reborn = newAgent("ci");
      await c.store.createAgent(reborn, newToken(), [], T0 + 3, request());
      assert.equal((await c.store.findAgentByName("ci", T0 + 3))?.id, reborn.id);
      assert.deepEqual(
        (await c.store.listAgentIdsByName("ci")).sort(),
        [agent.id, reborn.id].sort(),
      );
    });

    it("returns null for an unknown agent, audited as not_found", async () => {
      await c.setup();
      assert.equal(await c.store.revokeAgent(newId("agent"), T0, request()), null);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual([last?.action, last?.result], ["agent.revoke", "not_found"]);
    });
  });

  describe("agent reads", () => {
    it("agentSelf returns the agent, audits it and stamps last_used_at", async () => {
      const { agent, principal } = await c.setup();
      const self = await c.store.agentSelf(
        principal,
        T0,
        request({ actorType: "agent", actorId: agent.id, ts: T0 + 7 }),
      );
      assert.equal(self.id, agent.id);
      assert.equal((await c.store.getAgent(agent.id, T0))?.lastUsedAt, T0 + 7);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual([last?.action, last?.result, last?.agentId], ["agent.self", "ok", agent.id]);
    });

    it("rejects unauthenticated, without an entry, once the token is revoked or expired", async () => {
      await c.fresh();
      const agent = newAgent("temp", { expiresAt: T0 + 100 });
      const token = newToken();
      await c.store.createAgent(agent, token, [], T0, request());
      const principal = { agentId: agent.id, tokenId: token.tokenId };
      await c.store.agentSelf(principal, T0 + 99, request());
      const head = await c.store.auditHead();
      await rejectsWith(c.store.agentSelf(principal, T0 + 100, request()), "unauthenticated");
      await rejectsWith(
        c.store.listSecretsForAgent(principal, T0 + 100, request()),
        "unauthenticated",
      );
      await rejectsWith(
        c.store.getSecretForAgent(principal, "x", T0 + 100, request()),
        "unauthenticated",
      );
      assert.deepEqual(await c.store.auditHead(), head);
      await c.store.revokeAgent(agent.id, T0 + 1, request());
      await rejectsWith(c.store.agentSelf(principal, T0 + 2, request()), "unauthenticated");
    });

    it("lists only the secrets granted at their current version and not expired", async () => {
      const { agent, principal } = await c.setup();
      const later = secretWrite("expiring");
      await c.store.putSecretVersion(later, T0, request());
      await c.store.addGrant(grantFor(agent, later.id, 1, T0 + 50), T0, request());
      await c.store.putSecretVersion(secretWrite("ungranted"), T0, request());
      assert.deepEqual(await c.store.listSecretsForAgent(principal, T0 + 49, request()), [
        { name: "db-password", version: 1 },
        { name: "expiring", version: 1 },
      ]);
      assert.deepEqual(await c.store.listSecretsForAgent(principal, T0 + 50, request()), [
        { name: "db-password", version: 1 },
      ]);
    });

    it("returns the current value, wrap and grant to a granted agent", async () => {
      const { secret, principal } = await c.setup();
      const got = await c.store.getSecretForAgent(principal, "db-password", T0, request());
      assert.deepEqual(got?.value, secret.value);
      assert.equal(got?.secret.version, 1);
      assert.equal(got?.grant.version, 1);
      assert.equal(got?.grant.wrap.length, 101);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual(
        [last?.action, last?.result, last?.secretId, last?.secretVersion],
        ["secret.read", "ok", secret.id, 1],
      );
    });

    it("returns null for a missing secret (not_found) or one not granted (denied)", async () => {
      const { principal } = await c.setup();
      await c.store.putSecretVersion(secretWrite("other"), T0, request());
      assert.equal(await c.store.getSecretForAgent(principal, "nope", T0, request()), null);
      assert.equal(await c.store.getSecretForAgent(principal, "other", T0, request()), null);
      const entries = (await c.store.listAudit({ limit: 100 })).slice(-2);
      assert.deepEqual(
        entries.map((e) => [e.action, e.result]),
        [
          ["secret.read", "not_found"],
          ["secret.read", "denied"],
        ],
      );
    });

    it("treats a grant as expired exactly at not_after", async () => {
      const { agent, principal } = await c.setup();
      const s = secretWrite("short");
      await c.store.putSecretVersion(s, T0, request());
      await c.store.addGrant(grantFor(agent, s.id, 1, T0 + 10), T0, request());
      assert.notEqual(await c.store.getSecretForAgent(principal, "short", T0 + 9, request()), null);
      assert.equal(await c.store.getSecretForAgent(principal, "short", T0 + 10, request()), null);
    });
  });
}
