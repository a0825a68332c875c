/**
 * The store contract, part 3: limits the store enforces (SECURITY-TESTS #16). A grant's read
 * budget is counted in the read's own transaction, kept by re-wraps and reset by `addGrant`;
 * an agent's CIDR allowlist is stored and returned as given (the server checks it).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ContractContext,
  grantFor,
  newAgent,
  newToken,
  request,
  secretWrite,
  T0,
} from "./contract-fixtures.js";
import type { AgentPrincipal } from "./store.js";

/** Registers this part of the contract. */
export function limitsContract(c: ContractContext): void {
  describe("limits", () => {
    it("stores an agent's CIDR allowlist and returns it on every read of the agent", async () => {
      await c.fresh();
      const cidrs = ["10.0.0.0/8", "2001:db8::/32"];
      const agent = newAgent("fenced", { allowedCidrs: cidrs });
      const token = newToken();
      const created = await c.store.createAgent(agent, token, [], T0, request());
      assert.deepEqual(created.allowedCidrs, cidrs);
      assert.deepEqual((await c.store.getAgent(agent.id, T0))?.allowedCidrs, cidrs);
      assert.deepEqual(
        (await c.store.findAgentByTokenId(token.tokenId))?.agent.allowedCidrs,
        cidrs,
      );
      const other = newAgent("open");
      assert.deepEqual(
        (await c.store.createAgent(other, newToken(), [], T0, request())).allowedCidrs,
        [],
      );
    });

    it("allows exactly max_uses reads, then denies without spending, and says why", async () => {
      const { secret, agent, principal } = await c.setup();
      const grant = { ...grantFor(agent, secret.id, 1), maxUses: 2 };
      assert.equal((await c.store.addGrant(grant, T0, request()))?.maxUses, 2);
      const first = await c.store.getSecretForAgent(principal, "db-password", T0, request());
      assert.equal(first?.grant.uses, 1);
      const second = await c.store.getSecretForAgent(principal, "db-password", T0, request());
      assert.equal(second?.grant.uses, 2);
      assert.equal(await c.store.getSecretForAgent(principal, "db-password", T0, request()), null);
      const last = (await c.store.listAudit({ limit: 100 })).at(-1);
      assert.deepEqual(
        [last?.action, last?.result, last?.detail],
        ["secret.read", "denied", "max_uses=2 reached"],
      );
      const [stored] = await c.store.listGrants({ agentIds: [agent.id] });
      assert.deepEqual([stored?.maxUses, stored?.uses], [2, 2]);
      assert.deepEqual(await c.store.listSecretsForAgent(principal, T0, request()), []);
    });

    it("counts no uses without a budget", async () => {
      const { principal, agent } = await c.setup();
      await c.store.getSecretForAgent(principal, "db-password", T0, request());
      const [stored] = await c.store.listGrants({ agentIds: [agent.id] });
      assert.deepEqual([stored?.maxUses, stored?.uses], [0, 0]);
    });

    it("keeps budget and uses through a new version and a rotate; addGrant resets them", async () => {
      const { secret, agent, principal } = await c.setup();
      await c.store.addGrant({ ...grantFor(agent, secret.id, 1), maxUses: 3 }, T0, request());
      await c.store.getSecretForAgent(principal, "db-password", T0, request());
      await c.store.putSecretVersion(
        secretWrite("db-password", {
          id: secret.id,
          expectedVersion: 1,
          version: 2,
          grants: [grantFor(agent, secret.id, 2)],
        }),
        T0,
        request(),
      );
      const rotated = newAgent("ci");
      const next = newToken();
      await c.store.rotateAgent(
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
      let [stored] = await c.store.listGrants({ agentIds: [agent.id] });
      assert.deepEqual([stored?.version, stored?.maxUses, stored?.uses], [2, 3, 1]);
      const nextPrincipal: AgentPrincipal = { agentId: agent.id, tokenId: next.tokenId };
      assert.equal(principal.agentId, nextPrincipal.agentId);
      await c.store.getSecretForAgent(nextPrincipal, "db-password", T0, request());
      await c.store.getSecretForAgent(nextPrincipal, "db-password", T0, request());
      assert.equal(
        await c.store.getSecretForAgent(nextPrincipal, "db-password", T0, request()),
        null,
      );
      const again = { ...grantFor({ ...agent, encPk: rotated.encPk }, secret.id, 2), maxUses: 1 };
      await c.store.addGrant(again, T0, request());
      [stored] = await c.store.listGrants({ agentIds: [agent.id] });
      assert.deepEqual([stored?.maxUses, stored?.uses], [1, 0]);
      assert.notEqual(
        await c.store.getSecretForAgent(nextPrincipal, "db-password", T0, request()),
        null,
      );
    });
  });
}
