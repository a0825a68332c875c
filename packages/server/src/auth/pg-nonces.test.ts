// Owner request nonces shared through PostgreSQL (issue 6): a request accepted by one server is
// a replay on every other. Each "server" is a pool of its own on one schema of the test server
// `scripts/test.mjs` starts (KEYHOLE_TEST_DATABASE_URL).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import {
  encodeOwnerRequestMessage,
  formatOwnerAuthorization,
  generateSigningSeed,
  importSigningKey,
  isKeyholeError,
  sign,
} from "@keyhole/core";
import postgres from "postgres";
import { PgDb, type Sql } from "../store/postgres-db.js";
import { storageCause } from "../store/storage-errors.js";
import { pgTestUrl, skipWithoutPostgres, TestSchemas } from "../test-support/postgres.js";
import { authenticateOwner } from "./owner-auth.js";
import { PgNonceStore } from "./pg-nonces.js";

const url = pgTestUrl();
const schemas = url === null ? null : new TestSchemas(url);
const admin = schemas?.admin ?? null;
after(async () => schemas?.end());

/** `count` servers' pools on one fresh, migrated schema; `close` ends them and drops it. */
async function servers(count: number) {
  if (schemas === null || admin === null || url === null) {
    throw new Error("no PostgreSQL test server");
  }
  const { schema, drop } = await schemas.fresh();
  const dbs: PgDb[] = [];
  for (let i = 0; i < count; i++) dbs.push(await PgDb.open({ url, schema, maxConnections: 4 }));
  return {
    sql: dbs.map((db) => db.sql),
    rows: async () =>
      Number((await admin`SELECT count(*)::int AS n FROM ${admin(schema)}.auth_nonces`)[0]?.n),
    close: async () => {
      await Promise.all(dbs.map((db) => db.close()));
      await drop();
    },
  };
}

const nonce = () => randomBytes(16).toString("base64url");

if (url === null) {
  skipWithoutPostgres("PgNonceStore");
} else {
  describe("PgNonceStore: replay checks hold across servers", () => {
    it("answers replayed on server B for a nonce used on server A", async () => {
      const s = await servers(2);
      try {
        const [a, b] = s.sql.map((sql) => new PgNonceStore(sql, { since: 0 }));
        assert.ok(a && b);
        const n = nonce();
        assert.equal(await a.use(n, 1000), "fresh");
        assert.equal(await b.use(n, 1001), "replayed");
        assert.equal(await a.use(n, 1002), "replayed");
        assert.equal(await b.use(nonce(), 1003), "fresh");
      } finally {
        await s.close();
      }
    });

    it("lets exactly one of several servers claim a nonce presented to all at once", async () => {
      const s = await servers(2);
      try {
        const stores = s.sql.map((sql) => new PgNonceStore(sql, { since: 0 }));
        const n = nonce();
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => stores[i % 2]?.use(n, 1000)),
        );
        assert.equal(results.filter((r) => r === "fresh").length, 1);
        assert.equal(results.filter((r) => r === "replayed").length, 9);
      } finally {
        await s.close();
      }
    });

    it("prunes nonces a minute after they expire, a bounded number per call", async () => {
      const s = await servers(1);
      try {
        const store = new PgNonceStore(s.sql[0] as Sql, { since: 0 });
        const old = nonce();
        assert.equal(await store.use(old, 0), "fresh");
        for (let i = 0; i < 3; i++) await store.use(nonce(), 10_000);
        assert.equal(await store.prune(180_000), 0, "kept through the grace for other clocks");
        assert.equal(await store.use(old, 180_000), "replayed", "until pruned, still a replay");
        assert.equal(await store.prune(180_001), 1);
        assert.equal(await s.rows(), 3);
        assert.equal(await store.prune(10_000_000, 2), 2, "at most `limit` per call");
        assert.equal(await store.prune(10_000_000, 2), 1);
        assert.equal(await s.rows(), 0);
      } finally {
        await s.close();
      }
    });

    it("answers full at maxEntries, as counted by the last prune, until nonces expire", async () => {
      const s = await servers(1);
      try {
        const store = new PgNonceStore(s.sql[0] as Sql, { since: 0, maxEntries: 2 });
        assert.equal(await store.use(nonce(), 0), "fresh");
        assert.equal(await store.use(nonce(), 0), "fresh");
        await store.prune(1);
        assert.equal(await store.use(nonce(), 1), "full");
        await store.prune(200_000);
        assert.equal(await store.use(nonce(), 200_000), "fresh");
      } finally {
        await s.close();
      }
    });

    it("makes owner authentication refuse a request replayed to another server", async () => {
      const s = await servers(2);
      try {
        const [a, b] = s.sql.map((sql) => new PgNonceStore(sql, { since: 0 }));
        assert.ok(a && b);
        const { header, facts } = await signedRequest(5000);
        assert.deepEqual(await authenticateOwner(header, facts, a), { ok: true });
        assert.deepEqual(await authenticateOwner(header, { ...facts, now: 6000 }, b), {
          ok: false,
          reason: "replayed_nonce",
        });
      } finally {
        await s.close();
      }
    });
  });
}

describe("PgNonceStore without its database", () => {
  it("refuses the owner request with a coded 503, never accepting it unchecked", async () => {
    // Nothing listens on port 1: every connection is refused at once.
    const down = postgres("postgres://keyhole@127.0.0.1:1/keyhole", {
      max: 1,
      connect_timeout: 2,
      onnotice: () => {},
    }) as unknown as Sql;
    try {
      const store = new PgNonceStore(down, { since: 0 });
      const { header, facts } = await signedRequest(5000);
      const refused = await authenticateOwner(header, facts, store).then(
        () => assert.fail("accepted without a replay check"),
        (error: unknown) => error,
      );
      assert.ok(isKeyholeError(refused));
      assert.equal(refused.code, "unavailable");
      assert.equal(refused.status, 503);
      assert.equal(storageCause(refused), "PG_ECONNREFUSED");
      await assert.rejects(store.prune(0), { code: "unavailable" });
    } finally {
      await down.end({ timeout: 1 });
    }
  });

  it("refuses what is no nonce, and bad options", async () => {
    const down = postgres("postgres://keyhole@127.0.0.1:1/keyhole") as unknown as Sql;
    const store = new PgNonceStore(down, { since: 0 });
    await assert.rejects(store.use("not base64url!", 0), RangeError);
    await assert.rejects(store.use("", 0), RangeError);
    await assert.rejects(store.use("a".repeat(129), 0), RangeError);
    assert.throws(() => new PgNonceStore(down, { since: 0, ttlMs: 0 }), RangeError);
    assert.throws(() => new PgNonceStore(down, { since: Number.NaN }), RangeError);
  });
});

/** A signed owner request and the facts the server sees with it. */
async function signedRequest(now: number) {
  const key = await importSigningKey(generateSigningSeed());
  const body = new Uint8Array(0);
  const facts = {
    vaultId: "vault-1",
    ownerSignPk: key.publicKey,
    method: "POST",
    target: "/v1/owner/grants",
    body,
    now,
  };
  const n = randomBytes(16);
  const message = encodeOwnerRequestMessage({
    vaultId: facts.vaultId,
    method: facts.method,
    pathWithQuery: facts.target,
    timestamp: now,
    nonce: n,
    bodyHash: new Uint8Array(createHash("sha256").update(body).digest()),
  });
  return { header: formatOwnerAuthorization(now, n, await sign(key, message)), facts };
}
