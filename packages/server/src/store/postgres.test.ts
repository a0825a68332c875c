// The store contract against PostgreSQL (issue 6): the same suite as SQLite, each store in a
// schema of its own on the test server `scripts/test.mjs` starts (KEYHOLE_TEST_DATABASE_URL).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import postgres from "postgres";
import { pgTestUrl } from "../test-support/postgres.js";
import { runStoreContract } from "./contract.js";
import { openPostgresStore } from "./postgres.js";

const url = pgTestUrl();
const admin = url === null ? null : postgres(url, { max: 2, onnotice: () => {} });
after(async () => admin?.end({ timeout: 5 }));

/** A fresh, empty schema; dropped by the returned function. */
async function freshSchema(): Promise<{ schema: string; drop: () => Promise<void> }> {
  if (admin === null) throw new Error("no PostgreSQL test server");
  const schema = `t_${randomBytes(8).toString("hex")}`;
  await admin`CREATE SCHEMA ${admin(schema)}`;
  return { schema, drop: async () => void (await admin`DROP SCHEMA ${admin(schema)} CASCADE`) };
}

if (url === null) {
  describe("Store contract: postgres", () => {
    it("needs a PostgreSQL test server (KEYHOLE_TEST_DATABASE_URL)", (t) => {
      t.skip("no PostgreSQL here: see README, 'Running the PostgreSQL tests'");
    });
  });
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
    it("applies its migrations once, whichever of several servers starts first", async () => {
      const { schema, drop } = await freshSchema();
      try {
        const stores = await Promise.all(
          [1, 2, 3].map(() => openPostgresStore({ url, schema, maxConnections: 2 })),
        );
        await Promise.all(stores.map((s) => s.close()));
        const sql = admin as postgres.Sql;
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
