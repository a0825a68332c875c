/**
 * The store contract, part 2: secrets, grants and the audit chain.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AUDIT_GENESIS, chainAuditHash, newId } from "@keyhole/core";
import { sha256Sync } from "../audit/sha256.js";
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
export function secretContract(c: ContractContext): void {
  describe("secrets", () => {
    it("creates a secret and reads it back by name, id and version", async () => {
      await c.fresh();
      const write = secretWrite("api-key");
      const result = await c.store.putSecretVersion(write, T0, request());
      assert.deepEqual(result, { id: write.id, name: "api-key", version: 1, created: true });
      assert.equal((await c.store.getSecretByName("api-key"))?.id, write.id);
      assert.equal((await c.store.getSecretById(write.id))?.name, "api-key");
      const version = await c.store.getSecretVersion(write.id, 1);
      assert.deepEqual(version?.value, write.value);
      assert.deepEqual(version?.ownerWrap, write.ownerWrap);
      assert.deepEqual(version?.ownerSig, write.ownerSig);
      assert.equal(await c.store.getSecretVersion(write.id, 2), null);
      assert.equal(await c.store.getSecretByName("nope"), null);
      assert.equal(await c.store.getSecretById(newId("secret")), null);
      const [summary] = await c.store.listSecrets(T0);
      assert.equal(summary?.size, write.value.length);
      assert.equal(summary?.grantCount, 0);
      assert.equal(summary?.rotationRecommended, false);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual(
        [last?.action, last?.detail, last?.secretVersion],
        ["secret.write", "created", 1],
      );
    });

    it("refuses a taken name or id, and a create that carries grants", async () => {
      const { secret, agent } = await c.setup();
      await rejectsWith(
        c.store.putSecretVersion(secretWrite("db-password"), T0, request()),
        "conflict",
      );
      await rejectsWith(
        c.store.putSecretVersion(secretWrite("fresh", { id: secret.id }), T0, request()),
        "conflict",
      );
      const write = secretWrite("fresh");
      await rejectsWith(
        c.store.putSecretVersion(
          { ...write, grants: [grantFor(agent, write.id, 1)] },
          T0,
          request(),
        ),
        "conflict",
      );
      assert.equal(await c.store.getSecretByName("fresh"), null);
    });

    it("compare-and-sets the version: a stale writer gets conflict", async () => {
      const { secret, agent } = await c.setup();
      const next = {
        ...secret,
        expectedVersion: 1,
        version: 2,
        value: bytes(60),
        grants: [grantFor(agent, secret.id, 2)],
      };
      await c.store.putSecretVersion(next, T0 + 1, request());
      await rejectsWith(c.store.putSecretVersion(next, T0 + 2, request()), "conflict");
      assert.equal((await c.store.getSecretByName("db-password"))?.version, 2);
      assert.deepEqual(
        (await c.store.listSecretVersions("db-password"))?.map((v) => v.version),
        [1, 2],
      );
      assert.equal(await c.store.listSecretVersions("nope"), null);
    });

    it("requires the grants of an update to cover exactly the active grants, for current keys", async () => {
      const { secret, agent } = await c.setup();
      const base = { ...secret, expectedVersion: 1, version: 2, value: bytes(60) };
      await rejectsWith(
        c.store.putSecretVersion({ ...base, grants: [] }, T0, request()),
        "conflict",
      );
      const stranger = newAgent("stranger");
      await c.store.createAgent(stranger, newToken(), [], T0, request());
      await rejectsWith(
        c.store.putSecretVersion(
          { ...base, grants: [grantFor(agent, secret.id, 2), grantFor(stranger, secret.id, 2)] },
          T0,
          request(),
        ),
        "conflict",
      );
      await rejectsWith(
        c.store.putSecretVersion(
          { ...base, grants: [{ ...grantFor(agent, secret.id, 2), agentEncPk: bytes(32) }] },
          T0,
          request(),
        ),
        "conflict",
      );
      assert.equal((await c.store.getSecretByName("db-password"))?.version, 1);
    });

    it("moves grants to the new version, purges expired ones and clears rotation_recommended", async () => {
      const { secret, agent, principal } = await c.setup();
      const expiring = newAgent("expiring");
      await c.store.createAgent(
        expiring,
        newToken(),
        [grantFor(expiring, secret.id, 1, T0 + 5)],
        T0,
        request(),
      );
      await c.store.removeGrant(agent.id, secret.id, request());
      await c.store.addGrant(grantFor(agent, secret.id, 1), T0, request());
      assert.equal((await c.store.getSecretByName("db-password"))?.rotationRecommended, true);
      const value = bytes(60);
      await c.store.putSecretVersion(
        {
          ...secret,
          expectedVersion: 1,
          version: 2,
          value,
          grants: [grantFor(agent, secret.id, 2)],
        },
        T0 + 10,
        request(),
      );
      const grants = await c.store.listGrants();
      assert.deepEqual(
        grants.map((g) => [g.agentName, g.version]),
        [["ci", 2]],
      );
      assert.equal((await c.store.getSecretByName("db-password"))?.rotationRecommended, false);
      const got = await c.store.getSecretForAgent(principal, "db-password", T0 + 10, request());
      assert.deepEqual(got?.value, value);
    });

    it("reads a secret for the owner with the active grantees, audited", async () => {
      const { secret, agent } = await c.setup();
      const read = await c.store.readSecretForOwner("db-password", T0, request());
      assert.deepEqual(read?.current.value, secret.value);
      assert.deepEqual(
        read?.grantees.map((g) => [g.agentId, g.agentName]),
        [[agent.id, "ci"]],
      );
      assert.deepEqual(read?.grantees[0]?.encPk, agent.encPk);
      assert.deepEqual(read?.grantees[0]?.keySig, agent.keySig);
      assert.equal(await c.store.readSecretForOwner("nope", T0, request()), null);
      const entries = (await c.store.listAudit({ limit: 100 })).slice(-2);
      assert.deepEqual(
        entries.map((e) => [e.action, e.result]),
        [
          ["secret.owner_read", "ok"],
          ["secret.owner_read", "not_found"],
        ],
      );
    });

    it("deletes a secret with its versions and grants; false when absent", async () => {
      const { secret } = await c.setup();
      assert.equal(await c.store.deleteSecret("db-password", request()), true);
      assert.equal(await c.store.getSecretByName("db-password"), null);
      assert.equal(await c.store.getSecretVersion(secret.id, 1), null);
      assert.deepEqual(await c.store.listGrants(), []);
      assert.equal(await c.store.deleteSecret("db-password", request()), false);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual([last?.action, last?.result], ["secret.delete", "not_found"]);
    });
  });

  describe("grants", () => {
    it("adds and replaces a grant, with the names", async () => {
      const { secret, agent } = await c.setup();
      const replaced = await c.store.addGrant(
        grantFor(agent, secret.id, 1, T0 + 999),
        T0 + 3,
        request(),
      );
      assert.equal(replaced?.notAfter, T0 + 999);
      assert.equal(replaced?.createdAt, T0 + 3);
      assert.equal(replaced?.agentName, "ci");
      assert.equal((await c.store.listGrants()).length, 1);
      assert.equal((await c.store.listActiveGrantsForAgent(agent.id, T0)).length, 1);
      assert.equal((await c.store.listActiveGrantsForAgent(agent.id, T0 + 999)).length, 0);
    });

    it("refuses a stale version or a changed agent key with conflict", async () => {
      const { secret, agent } = await c.setup();
      await rejectsWith(c.store.addGrant(grantFor(agent, secret.id, 2), T0, request()), "conflict");
      await rejectsWith(
        c.store.addGrant(
          { ...grantFor(agent, secret.id, 1), agentEncPk: bytes(32) },
          T0,
          request(),
        ),
        "conflict",
      );
    });

    it("returns null for a missing or revoked agent or a missing secret", async () => {
      const { secret, agent } = await c.setup();
      const ghost = newAgent("ghost");
      assert.equal(await c.store.addGrant(grantFor(ghost, secret.id, 1), T0, request()), null);
      assert.equal(
        await c.store.addGrant(grantFor(agent, newId("secret"), 1), T0, request()),
        null,
      );
      await c.store.revokeAgent(agent.id, T0, request());
      assert.equal(await c.store.addGrant(grantFor(agent, secret.id, 1), T0, request()), null);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual([last?.action, last?.result], ["grant.add", "not_found"]);
    });

    it("removes a grant and marks the secret rotation-recommended; false when absent", async () => {
      const { secret, agent } = await c.setup();
      assert.equal(await c.store.removeGrant(agent.id, secret.id, request()), true);
      assert.equal((await c.store.getSecretByName("db-password"))?.rotationRecommended, true);
      assert.equal(await c.store.removeGrant(agent.id, secret.id, request()), false);
      assert.deepEqual(await c.store.listGrants(), []);
    });

    it("filters grants by agent ids; an empty filter matches nothing", async () => {
      const { agent } = await c.setup();
      assert.equal((await c.store.listGrants({ agentIds: [agent.id] })).length, 1);
      assert.equal((await c.store.listGrants({ agentIds: [newId("agent")] })).length, 0);
      assert.equal((await c.store.listGrants({ agentIds: [] })).length, 0);
    });
  });

  describe("audit", () => {
    it("chains every entry onto the one before with the core hash", async () => {
      await c.setup();
      const entries = await c.store.listAudit({ limit: 1000 });
      assert.ok(entries.length >= 2);
      let previous = AUDIT_GENESIS;
      entries.forEach((entry, i) => {
        assert.equal(entry.seq, i + 1);
        const { hash, ...fields } = entry;
        previous = chainAuditHash(previous, fields, sha256Sync);
        assert.deepEqual(hash, previous);
      });
      assert.deepEqual(await c.store.auditHead(), { size: entries.length, head: previous });
    });

    it("appends a standalone entry and filters by after, limit, agent, secret and since", async () => {
      const { agent, secret } = await c.setup();
      const base = {
        ...request(),
        action: "auth.failed",
        result: "unauthenticated",
        agentId: "",
        secretId: "",
        secretVersion: 0,
        detail: "",
      };
      const appended = await c.store.appendAudit({ ...base, ts: T0 + 100 });
      assert.equal(appended.seq, (await c.store.auditHead()).size);
      const all = await c.store.listAudit({ limit: 1000 });
      assert.deepEqual(
        (await c.store.listAudit({ after: 1, limit: 1 })).map((e) => e.seq),
        [2],
      );
      assert.ok(
        (await c.store.listAudit({ agentIds: [agent.id], limit: 100 })).every(
          (e) => e.agentId === agent.id,
        ),
      );
      assert.ok((await c.store.listAudit({ secretIds: [secret.id], limit: 100 })).length >= 1);
      assert.deepEqual(await c.store.listAudit({ agentIds: [], limit: 100 }), []);
      assert.deepEqual(
        (await c.store.listAudit({ since: T0 + 100, limit: 100 })).map((e) => e.seq),
        [appended.seq],
      );
      assert.equal(all.at(-1)?.action, "auth.failed");
    });

    it("starts empty with the genesis head", async () => {
      await c.empty();
      assert.deepEqual(await c.store.auditHead(), { size: 0, head: AUDIT_GENESIS });
      assert.deepEqual(await c.store.listAudit({ limit: 10 }), []);
    });
  });
}
