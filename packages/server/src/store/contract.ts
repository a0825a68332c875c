/**
 * The shared contract every `Store` adapter passes (the drizzle `sqlite-common.ts` pattern):
 * each adapter's test file calls `runStoreContract` with a factory. It covers every operation,
 * the audit-in-the-same-transaction rule (an injected audit failure rolls the operation back),
 * compare-and-set conflicts, and absence as `null`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { newId } from "@keyhole/core";
import { verifyAuditChain } from "../audit/verify.js";
import { auditEntryView } from "../routes/views.js";
import { agentContract } from "./contract-agents.js";
import {
  bytes,
  type ContractContext,
  grantFor,
  newAgent,
  newToken,
  request,
  type StoreHarness,
  secretWrite,
  T0,
} from "./contract-fixtures.js";
import { limitsContract } from "./contract-limits.js";
import { secretContract } from "./contract-secrets.js";
import type { Store } from "./store.js";

export type { StoreHarness } from "./contract-fixtures.js";

/** Runs the store contract against the adapter `makeStore` opens. */
export function runStoreContract(name: string, makeStore: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let h: StoreHarness | undefined;
    let store: Store;

    const empty = async () => {
      await h?.cleanup();
      h = await makeStore();
      store = h.store;
    };
    const fresh = async () => {
      await empty();
      await store.ensureVault(newId("vault"), T0);
    };
    const setup = async () => {
      await fresh();
      const secret = secretWrite("db-password");
      await store.putSecretVersion(secret, T0, request());
      const agent = newAgent("ci");
      const token = newToken();
      await store.createAgent(agent, token, [grantFor(agent, secret.id, 1)], T0, request());
      return { secret, agent, token, principal: { agentId: agent.id, tokenId: token.tokenId } };
    };
    const c: ContractContext = {
      get store() {
        return store;
      },
      get h() {
        if (h === undefined) throw new Error("no store yet");
        return h;
      },
      empty,
      fresh,
      setup,
    };
    before(fresh);
    after(async () => h?.cleanup());

    describe("vault", () => {
      it("creates the vault once and keeps the first id", async () => {
        await empty();
        assert.equal(await store.getVault(), null);
        const first = await store.ensureVault("vlt_first", T0);
        const second = await store.ensureVault("vlt_second", T0 + 1);
        assert.equal(first.vaultId, "vlt_first");
        assert.equal(second.vaultId, "vlt_first");
        assert.equal(first.ownerSignPk, null);
      });

      it("initialises once; a second init returns null and is audited as a conflict", async () => {
        await fresh();
        const sign = bytes(32);
        const vault = await store.initVault(sign, bytes(32), request());
        assert.deepEqual(vault?.ownerSignPk, sign);
        assert.equal(vault?.initializedAt, T0);
        assert.equal(await store.initVault(bytes(32), bytes(32), request()), null);
        assert.deepEqual((await store.getVault())?.ownerSignPk, sign);
        const entries = await store.listAudit({ limit: 10 });
        assert.deepEqual(
          entries.map((e) => [e.action, e.result]),
          [
            ["vault.init", "ok"],
            ["vault.init", "conflict"],
          ],
        );
      });
    });

    agentContract(c);
    secretContract(c);
    limitsContract(c);

    describe("concurrent operations", () => {
      it("leave one gap-free audit chain when some of them are refused", async () => {
        const { secret, principal } = await setup();
        const before = await store.auditHead();
        // Issued together: adapters that batch run them in one transaction, the refused ones
        // rolled back among the others.
        const operations = Array.from({ length: 30 }, (_, i) => {
          if (i % 3 === 0) {
            const stale = { ...secret, expectedVersion: 7, version: 8, grants: [] };
            return store.putSecretVersion(stale, T0, request());
          }
          const name = i % 3 === 1 ? "db-password" : "missing";
          return store.getSecretForAgent(principal, name, T0 + i, request({ ts: T0 + i }));
        });
        const outcomes = await Promise.allSettled(operations);
        outcomes.forEach((outcome, i) => {
          assert.equal(outcome.status, i % 3 === 0 ? "rejected" : "fulfilled", `operation ${i}`);
        });
        const head = await store.auditHead();
        assert.equal(head.size, before.size + 20, "one entry per operation that resolved");
        const entries = await store.listAudit({ limit: 1000 });
        const chain = verifyAuditChain(entries.map(auditEntryView));
        assert.deepEqual(chain, { ok: true, size: head.size, head: head.head });
      });
    });

    describe("limited grants under concurrent re-wraps", () => {
      it("serve and count every read racing a new version and a rotate, losing no use", async () => {
        const { secret, agent, principal } = await setup();
        await store.addGrant({ ...grantFor(agent, secret.id, 1), maxUses: 1000 }, T0, request());
        const read = (p: typeof principal) =>
          store.getSecretForAgent(p, "db-password", T0, request());
        const reads = (p: typeof principal) => Array.from({ length: 15 }, () => read(p));
        const newVersion = store.putSecretVersion(
          secretWrite("db-password", {
            id: secret.id,
            expectedVersion: 1,
            version: 2,
            grants: [grantFor(agent, secret.id, 2)],
          }),
          T0,
          request(),
        );
        const beforeVersion = reads(principal);
        const afterVersion = reads(principal);
        const served = await Promise.all([...beforeVersion, newVersion, ...afterVersion]);
        assert.ok(
          served.every((r) => r !== null),
          "no read is denied while its grant is re-wrapped",
        );
        const rotated = newAgent("ci");
        const next = newToken();
        const rotate = store.rotateAgent(
          {
            agentId: agent.id,
            expectedEncPk: agent.encPk,
            encPk: rotated.encPk,
            createdAt: T0 + 1,
            keySig: rotated.keySig,
          },
          next,
          [grantFor({ ...agent, encPk: rotated.encPk }, secret.id, 2)],
          T0,
          request(),
        );
        const racing = await Promise.allSettled([...reads(principal), rotate]);
        assert.equal(racing.at(-1)?.status, "fulfilled", "the rotate commits");
        // A read with the old token either committed before the rotate or was refused.
        const racingOk = racing
          .slice(0, -1)
          .filter((r) => r.status === "fulfilled" && r.value !== null).length;
        const [grant] = await store.listGrants({ agentIds: [agent.id] });
        assert.equal(grant?.uses, 30 + racingOk, "every served read counted once");
      });
    });

    describe("fail closed: an audit failure rolls the whole operation back", () => {
      it("creates no agent, writes no secret, releases no value, revokes nothing", async () => {
        const { secret, agent, token, principal } = await setup();
        const head = await store.auditHead();
        c.h.setAuditFailure(true);
        try {
          const other = newAgent("other");
          await assert.rejects(store.createAgent(other, newToken(), [], T0, request()));
          await assert.rejects(store.putSecretVersion(secretWrite("new"), T0, request()));
          await assert.rejects(
            store.putSecretVersion(
              {
                ...secret,
                expectedVersion: 1,
                version: 2,
                grants: [grantFor(agent, secret.id, 2)],
              },
              T0,
              request(),
            ),
          );
          await assert.rejects(store.getSecretForAgent(principal, "db-password", T0, request()));
          await assert.rejects(store.readSecretForOwner("db-password", T0, request()));
          await assert.rejects(store.revokeAgent(agent.id, T0, request()));
          await assert.rejects(store.removeGrant(agent.id, secret.id, request()));
          await assert.rejects(store.deleteSecret("db-password", request()));
          await assert.rejects(store.initVault(bytes(32), bytes(32), request()));
        } finally {
          c.h.setAuditFailure(false);
        }
        assert.deepEqual(await store.auditHead(), head);
        assert.equal((await store.listAgents(T0)).length, 1);
        assert.equal(await store.getSecretByName("new"), null);
        assert.equal((await store.getSecretByName("db-password"))?.version, 1);
        assert.equal((await store.getSecretByName("db-password"))?.rotationRecommended, false);
        assert.equal((await store.findAgentByTokenId(token.tokenId))?.agent.revokedAt, null);
        assert.equal((await store.listGrants()).length, 1);
        assert.deepEqual(await store.listRetiredTokenIds(), []);
        assert.equal((await store.getVault())?.ownerSignPk, null);
      });
    });
  });
}
