// The store contract against PostgreSQL (issue 6): the same suite as SQLite, each store in a
// schema of its own on the test server `scripts/test.mjs` starts (KEYHOLE_TEST_DATABASE_URL).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { verifyAuditChain } from "../audit/verify.js";
import { auditEntryView } from "../routes/views.js";
import { pgTestUrl, skipWithoutPostgres, TestSchemas } from "../test-support/postgres.js";
import { Relay } from "../test-support/postgres-relay.js";
import { runStoreContract } from "./contract.js";
import { grantFor, newAgent, newToken, request, secretWrite, T0 } from "./contract-fixtures.js";
import { POSTGRES_MIGRATIONS } from "./migrations/postgres/index.js";
import { checkSharedKeys, openPostgresBackend, openPostgresStore } from "./postgres.js";
import type { Store, WriteStats } from "./store.js";

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

    /** A vault on a store of its own with one secret granted to one agent. */
    const grantedStore = async (maxConnections: number) => {
      const { schema, drop } = await freshSchema();
      const store = await openPostgresStore({ url, schema, maxConnections });
      await store.ensureVault("vlt_batch", T0);
      const secret = secretWrite("db-password");
      await store.putSecretVersion(secret, T0, request());
      const agent = newAgent("batched");
      const token = newToken();
      await store.createAgent(agent, token, [grantFor(agent, secret.id, 1)], T0, request());
      const principal = { agentId: agent.id, tokenId: token.tokenId };
      const fetch = (p = principal, name = "db-password") =>
        store.getSecretForAgent(p, name, T0, request());
      const readTransactions = async () => {
        const sql = (schemas as TestSchemas).admin;
        const [row] = await sql`SELECT count(DISTINCT xmin::text)::int AS n
          FROM ${sql(schema)}.audit WHERE action = 'secret.read'`;
        return row?.n as number;
      };
      const verifiedChain = async () => {
        const head = await store.auditHead();
        const entries = await store.listAudit({ limit: 10_000 });
        assert.deepEqual(verifyAuditChain(entries.map(auditEntryView)), {
          ok: true,
          size: head.size,
          head: head.head,
        });
        return entries;
      };
      const close = async () => {
        await store.close();
        await drop();
      };
      return { store, principal, fetch, readTransactions, verifiedChain, close };
    };

    it("runs the agent operations that arrive together in one transaction", async () => {
      // Four connections: one batch in flight at a time, the others' operations wait for it.
      const vault = await grantedStore(4);
      try {
        const before = vault.store.writeStats() as WriteStats;
        const served = await Promise.all(Array.from({ length: 24 }, () => vault.fetch()));
        assert.ok(served.every((s) => s !== null));
        const after = vault.store.writeStats() as WriteStats;
        assert.equal(after.operations - before.operations, 24);
        const commits = after.commits - before.commits;
        assert.ok(commits < 24, `24 fetches took ${commits} commits`);
        assert.equal(await vault.readTransactions(), commits, "one transaction per commit");
        const entries = await vault.verifiedChain();
        assert.equal(entries.filter((e) => e.action === "secret.read").length, 24);
      } finally {
        await vault.close();
      }
    });

    it("answers an operation that fails in a batch alone, and serves the others", async () => {
      const vault = await grantedStore(4);
      try {
        // The first fetch runs alone at once; the next twelve wait for it and go together,
        // the one with a token that does not exist among them. It fails inside the batch's
        // transaction: the batch rolls back and each runs again on its own.
        const forged = { ...vault.principal, tokenId: newToken().tokenId };
        const outcomes = await Promise.allSettled([
          vault.fetch(),
          ...Array.from({ length: 6 }, () => vault.fetch()),
          vault.fetch(forged),
          vault.fetch(vault.principal, "missing"),
          ...Array.from({ length: 4 }, () => vault.fetch()),
        ]);
        outcomes.forEach((outcome, i) => {
          if (i === 7) {
            assert.equal(outcome.status, "rejected");
            const { reason } = outcome;
            assert.ok(isKeyholeError(reason) && reason.code === "unauthenticated", String(reason));
          } else if (i === 8) {
            assert.deepEqual(outcome, { status: "fulfilled", value: null });
          } else {
            assert.equal(outcome.status, "fulfilled", `fetch ${i}`);
            assert.notEqual((outcome as PromiseFulfilledResult<unknown>).value, null);
          }
        });
        const reads = (await vault.verifiedChain()).filter((e) => e.action === "secret.read");
        assert.deepEqual(
          reads.map((e) => e.result).sort(),
          ["not_found", ...Array(11).fill("ok")],
          "one entry per fetch answered, none for the refused one, none twice",
        );
      } finally {
        await vault.close();
      }
    });

    it("never deadlocks batches that count uses of the same limited grants", async () => {
      // Four pools (servers) of two batches each; six agents, each with a limited grant whose
      // row every fetch updates. Batches that met two of those rows in opposite orders would
      // deadlock (one of them refused after PostgreSQL's deadlock_timeout).
      const { schema, drop } = await freshSchema();
      const stores = await Promise.all(
        [1, 2, 3, 4].map(() => openPostgresStore({ url, schema, maxConnections: 8 })),
      );
      const [first] = stores as [Store];
      try {
        await first.ensureVault("vlt_limited", T0);
        const principals: { agentId: string; tokenId: Uint8Array }[] = [];
        for (let i = 0; i < 6; i++) {
          const secret = secretWrite(`limited-${i}`);
          await first.putSecretVersion(secret, T0, request());
          const agent = newAgent(`limited-${i}`);
          const token = newToken();
          await first.createAgent(agent, token, [], T0, request());
          await first.addGrant(
            { ...grantFor(agent, secret.id, 1), maxUses: 1_000_000 },
            T0,
            request(),
          );
          principals.push({ agentId: agent.id, tokenId: token.tokenId });
        }
        let served = 0;
        let slowest = 0;
        const until = performance.now() + 2_500;
        const loop = async (store: Store, seed: number) => {
          for (let round = 0; performance.now() < until; round++) {
            // Each round asks for all six at once, in an order that differs between loops.
            const order = [0, 1, 2, 3, 4, 5].map((i) => (i * (seed + 1) + round) % 6);
            await Promise.all(
              order.map(async (i) => {
                const started = performance.now();
                const read = await store.getSecretForAgent(
                  principals[i] as (typeof principals)[number],
                  `limited-${i}`,
                  T0,
                  request(),
                );
                assert.notEqual(read, null);
                slowest = Math.max(slowest, performance.now() - started);
                served++;
              }),
            );
          }
        };
        await Promise.all(stores.flatMap((store, s) => [loop(store, s), loop(store, s + 4)]));
        assert.ok(served > 50, `only ${served} fetches`);
        assert.ok(slowest < 900, `a fetch took ${Math.round(slowest)} ms (a deadlock wait?)`);
      } finally {
        await Promise.all(stores.map((s) => s.close()));
        await drop();
      }
    });

    it("gives up reads and writes the database never answers, then recovers", async () => {
      // A relay that stops passing bytes without closing anything: what a lost driver
      // connection looks like from here (statements that never settle).
      const relay = new Relay(url);
      await relay.up();
      const { schema, drop } = await freshSchema();
      const store = await openPostgresStore({
        url: relay.url(url),
        schema,
        maxConnections: 4,
        stallLimitMs: 400,
      });
      try {
        await store.ensureVault("vlt_stall", T0);
        relay.freeze();
        const started = performance.now();
        const outcomes = await Promise.allSettled([
          store.getVault(),
          store.appendAudit({
            ...request(),
            action: "auth.failed",
            result: "denied",
            agentId: "",
            secretId: "",
            secretVersion: 0,
            detail: "",
          }),
          store.ensureVault("vlt_stall", T0),
        ]);
        const tookMs = performance.now() - started;
        outcomes.forEach((outcome, i) => {
          assert.equal(outcome.status, "rejected");
          const { reason } = outcome as PromiseRejectedResult;
          assert.ok(isKeyholeError(reason) && reason.code === "unavailable", String(reason));
          // The read changed nothing; the writes may or may not have committed.
          const unknown = /may or may not have been made/.test(reason.message);
          assert.equal(unknown, i > 0, reason.message);
        });
        assert.ok(tookMs < 2_000, `gave up after ${Math.round(tookMs)} ms`);
        relay.thaw();
        const deadline = performance.now() + 10_000;
        for (;;) {
          const ok = await store.getVault().then(
            (vault) => vault?.vaultId === "vlt_stall",
            () => false,
          );
          if (ok) break;
          assert.ok(performance.now() < deadline, "the store did not recover");
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        relay.thaw();
        await store.close();
        await relay.down();
        await drop();
      }
    });

    it("chains entries whose text is not ASCII, or not well-formed UTF-16", async () => {
      const vault = await grantedStore(2);
      try {
        const draft = {
          ...request({ userAgent: "agent/ü \uD800 end" }),
          action: "auth.failed",
          result: "denied",
          agentId: "",
          secretId: "",
          secretVersion: 0,
          detail: "名前 \uDFFF",
        };
        const record = await vault.store.appendAudit(draft);
        // The lone surrogates became U+FFFD in the columns and the hashed bytes alike.
        assert.equal(record.userAgent, "agent/ü \uFFFD end");
        const entries = await vault.verifiedChain();
        const stored = entries.at(-1);
        assert.equal(stored?.userAgent, "agent/ü \uFFFD end");
        assert.equal(stored?.detail, "名前 \uFFFD");
        assert.deepEqual(stored?.hash, record.hash);
      } finally {
        await vault.close();
      }
    });

    it("pins the append function to its own schema, whatever the caller's search_path", async () => {
      const { schema, drop } = await freshSchema();
      const sql = (schemas as TestSchemas).admin;
      try {
        await (await openPostgresStore({ url, schema, maxConnections: 1 })).close();
        const [row] = await sql`SELECT proconfig FROM pg_proc
          WHERE proname = 'keyhole_audit_append' AND pronamespace = ${schema}::regnamespace`;
        assert.deepEqual(row?.proconfig, [`search_path=pg_catalog, ${schema}, pg_temp`]);
      } finally {
        await drop();
      }
    });

    it("appends nothing the database function does not recognise as an entry", async () => {
      const { schema, drop } = await freshSchema();
      const store = await openPostgresStore({ url, schema, maxConnections: 2 });
      const sql = (schemas as TestSchemas).admin;
      try {
        const append = (drafts: unknown) =>
          sql`SELECT * FROM ${sql(schema)}.keyhole_audit_append(${JSON.stringify(drafts)}::text::json)`;
        const columns = { ts: T0, request_id: "r", actor_type: "owner", actor_id: "o" };
        // Not the entry label; then the label with a seq already filled in; then no drafts.
        const label = Buffer.concat([
          Buffer.from([0, 0, 0, 22]),
          Buffer.from("keyhole/v1/audit-entry"),
        ]);
        const withSeq = Buffer.concat([
          label,
          Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]),
          Buffer.alloc(8),
        ]);
        for (const [drafts, code] of [
          [[{ ...columns, entry: "00".repeat(40) }], "KH002"],
          [[{ ...columns, entry: withSeq.toString("hex") }], "KH002"],
          [[], "KH001"],
        ] as const) {
          await assert.rejects(append(drafts), (error: { code?: string }) => error.code === code);
        }
        assert.equal((await store.auditHead()).size, 0, "nothing was appended");
      } finally {
        await store.close();
        await drop();
      }
    });

    it("is not fooled by another application's schema_migrations table", async () => {
      const { schema, drop } = await freshSchema();
      const sql = (schemas as TestSchemas).admin;
      try {
        await sql`CREATE TABLE ${sql(schema)}.schema_migrations (version INTEGER PRIMARY KEY)`;
        await sql`INSERT INTO ${sql(schema)}.schema_migrations VALUES (1), (2), (3), (99)`;
        const store = await openPostgresStore({ url, schema, maxConnections: 2 });
        await store.ensureVault("vlt_shared_schema", T0);
        await store.close();
      } finally {
        await drop();
      }
    });

    it("refuses a pepper other than the one the database's agent tokens were made with", async () => {
      const { schema, drop } = await freshSchema();
      const { store, sql } = await openPostgresBackend({ url, schema, maxConnections: 2 });
      try {
        await store.ensureVault("vlt_keys", T0);
        const token = newToken();
        await store.createAgent(newAgent("keyed"), token, [], T0, request());
        const audit = new Uint8Array(32).fill(7);
        await assert.rejects(
          checkSharedKeys(sql, { pepperKid: "another-kid", auditPublicKey: audit }, T0),
          (error: unknown) =>
            isKeyholeError(error) && /agent tokens in this database/.test(error.message),
        );
        const [none] = await sql`SELECT 1 FROM shared_keys`;
        assert.equal(none, undefined, "nothing recorded");
        await checkSharedKeys(sql, { pepperKid: token.pepperKid, auditPublicKey: audit }, T0);
        await checkSharedKeys(sql, { pepperKid: token.pepperKid, auditPublicKey: audit }, T0);
        await assert.rejects(
          checkSharedKeys(
            sql,
            { pepperKid: token.pepperKid, auditPublicKey: new Uint8Array(32) },
            T0,
          ),
          (error: unknown) =>
            isKeyholeError(error) && /^--audit-key-file is not/.test(error.message),
        );
      } finally {
        await store.close();
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
          await sql`SELECT version FROM ${sql(schema)}.keyhole_migrations ORDER BY version`;
        assert.deepEqual(
          rows.map((r) => r.version),
          POSTGRES_MIGRATIONS.map((m) => m.version),
        );
      } finally {
        await drop();
      }
    });
  });
}
