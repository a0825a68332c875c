// The store contract against PostgreSQL (issue 6): the same suite as SQLite, each store in a
// schema of its own on the test server `scripts/test.mjs` starts (KEYHOLE_TEST_DATABASE_URL).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { pgTestUrl, skipWithoutPostgres, TestSchemas } from "../test-support/postgres.js";
import { runStoreContract } from "./contract.js";
import { grantFor, newAgent, newToken, request, secretWrite, T0 } from "./contract-fixtures.js";
import { openPostgresStore } from "./postgres.js";
import type { Store } from "./store.js";

const url = pgTestUrl();
const schemas = url === null ? null : new TestSchemas(url);
after(async () => schemas?.end());

/** A fresh, empty schema; dropped by the returned function. */
const freshSchema = () => (schemas as TestSchemas).fresh();

if (url === null) {
  skipWithoutPostgres("Store contract: postgres");
} else {
  runStoreContract("postgres", async () => {
    const { schema, drop } = await freshSchema();
    let failAudit = false;
    const store = await openPostgresStore({
      url,
      schema,
      maxConnections: 4,
      beforeAuditAppend: () => {
        if (failAudit) throw new Error("injected audit failure");
      },
    });
    return {
      store,
      setAuditFailure: (fail) => {
        failAudit = fail;
      },
      cleanup: async () => {
        await store.close();
        await drop();
      },
    };
  });

  describe("PostgreSQL store", () => {
    it("revokes an agent promptly however many of its fetches are in flight", async () => {
      const { schema, drop } = await freshSchema();
      // Two pools: two servers on one database, the agent's fetches spread over both.
      const stores = await Promise.all(
        [1, 2].map(() => openPostgresStore({ url, schema, maxConnections: 6 })),
      );
      const [first, second] = stores as [Store, Store];
      try {
        await first.ensureVault("vlt_race", T0);
        const secret = secretWrite("db-password");
        await first.putSecretVersion(secret, T0, request());
        const agent = newAgent("busy");
        const token = newToken();
        await first.createAgent(agent, token, [grantFor(agent, secret.id, 1)], T0, request());
        const principal = { agentId: agent.id, tokenId: token.tokenId };
        let served = 0;
        let stop = false;
        // Ten fetches always in flight until the revoke lands.
        const worker = async (store: Store) => {
          while (!stop) {
            try {
              if (await store.getSecretForAgent(principal, "db-password", T0, request())) served++;
            } catch (error) {
              if (isKeyholeError(error) && error.code === "unauthenticated") return;
              throw error;
            }
          }
        };
        const workers = Array.from({ length: 10 }, (_, i) => worker(i % 2 ? first : second));
        while (served < 20) await new Promise((r) => setTimeout(r, 5));
        const started = Date.now();
        const revoked = await first.revokeAgent(agent.id, T0, request());
        const tookMs = Date.now() - started;
        stop = true;
        await Promise.all(workers);
        assert.ok(tookMs < 5_000, `the revoke took ${tookMs} ms`);
        // Every read the log shows before the revoke is in its blast radius, and none after it.
        const log = await first.listAudit({ limit: 100_000 });
        const revokeAt = log.findIndex((e) => e.action === "agent.revoke");
        const readsBefore = log
          .slice(0, revokeAt)
          .filter((e) => e.action === "secret.read" && e.result === "ok").length;
        const readsAfter = log
          .slice(revokeAt)
          .filter((e) => e.action === "secret.read" && e.result === "ok").length;
        assert.equal(revoked?.blastRadius[0]?.reads, readsBefore);
        assert.equal(readsAfter, 0, "no read is logged after the revoke");
        assert.equal(readsBefore, served);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
        await drop();
      }
    });

    it("applies its migrations once, whichever of several servers starts first", async () => {
      const { schema, drop } = await freshSchema();
      try {
        const stores = await Promise.all(
          [1, 2, 3].map(() => openPostgresStore({ url, schema, maxConnections: 2 })),
        );
        await Promise.all(stores.map((s) => s.close()));
        const sql = (schemas as TestSchemas).admin;
        const rows =
          await sql`SELECT version FROM ${sql(schema)}.schema_migrations ORDER BY version`;
        assert.deepEqual(
          rows.map((r) => r.version),
          [1, 2],
        );
      } finally {
        await drop();
      }
    });
  });
}
