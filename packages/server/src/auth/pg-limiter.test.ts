// The failed-authentication limiter shared through PostgreSQL (issue 6): limits hold across
// servers. Each "server" is a pool of its own on one schema of the test server that
// `scripts/test.mjs` starts (KEYHOLE_TEST_DATABASE_URL).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import postgres from "postgres";
import { PgDb, type Sql } from "../store/postgres-db.js";
import { pgTestUrl, skipWithoutPostgres, TestSchemas } from "../test-support/postgres.js";
import {
  LimiterQueueFull,
  MalformedLimiterRow,
  PgFailureLimiter,
  type PgLimiterOptions,
} from "./pg-limiter.js";
import { DEFAULT_LIMITS } from "./rate-limit.js";

const url = pgTestUrl();
const schemas = url === null ? null : new TestSchemas(url);
const admin = schemas?.admin ?? null;
after(async () => schemas?.end());

/** `count` servers' pools on one fresh, migrated schema; `close` ends them and drops it. */
async function servers(count: number, maxConnections = 4) {
  if (schemas === null || admin === null || url === null) {
    throw new Error("no PostgreSQL test server");
  }
  const { schema, drop } = await schemas.fresh();
  const dbs: PgDb[] = [];
  for (let i = 0; i < count; i++) dbs.push(await PgDb.open({ url, schema, maxConnections }));
  const table = async () =>
    admin`SELECT kind, key, failures, blocked_until::float8 AS blocked_until,
            strikes, last_failure::float8 AS last_failure
          FROM ${admin(schema)}.auth_limits ORDER BY kind, key`;
  return {
    sql: dbs.map((db) => db.sql),
    table,
    schema,
    close: async () => {
      await Promise.all(dbs.map((db) => db.close()));
      await drop();
    },
  };
}

/** A pool that counts the statements and transactions started through it. */
function counting(sql: Sql): { sql: Sql; calls: () => number } {
  let calls = 0;
  const proxy = new Proxy(sql, {
    apply(target, self, args) {
      calls += 1;
      return Reflect.apply(target, self, args);
    },
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      // A transaction starts with `reserve` (store/postgres-pool.ts), or `begin`.
      if ((property !== "begin" && property !== "reserve") || typeof value !== "function") {
        return value;
      }
      return (...args: unknown[]) => {
        calls += 1;
        return value.apply(target, args);
      };
    },
  });
  return { sql: proxy, calls: () => calls };
}

const KEY = "203.0.113.7";

if (url === null) {
  skipWithoutPostgres("PgFailureLimiter");
} else {
  describe("PgFailureLimiter: limits hold across servers", () => {
    it("counts failures split across two servers together and blocks the key on both", async () => {
      const s = await servers(3);
      try {
        const [a, b, c] = s.sql.map((sql) => new PgFailureLimiter(sql, { kind: "source" }));
        assert.ok(a && b && c);
        for (let i = 0; i < 5; i++) assert.equal(await a.recordFailure(KEY, 1000 + i), 0);
        for (let i = 5; i < 10; i++) assert.equal(await b.recordFailure(KEY, 1000 + i), 0);
        assert.equal(await a.recordFailure(KEY, 1010), 60_000, "the 11th failure, on A, blocks");
        assert.equal(await b.blockedFor(KEY, 1020), 59_990, "B sees A's block");
        assert.equal(await b.recordFailure(KEY, 1030), 59_980, "B answers its failures 429");
        assert.equal(await c.blockedFor(KEY, 1040), 59_970, "so does a server that saw nothing");
        assert.equal(await c.blockedFor("198.51.100.1", 1040), 0, "other keys are not blocked");
        const token = new PgFailureLimiter(s.sql[0] as Sql, { kind: "token" });
        assert.equal(await token.blockedFor(KEY, 1040), 0, "the kinds do not mix");
      } finally {
        await s.close();
      }
    });

    it("lifts a block everywhere when it ends, and doubles the next one across servers", async () => {
      const s = await servers(2);
      try {
        const limits = { ...DEFAULT_LIMITS, maxFailures: 1 };
        const [a, b] = s.sql.map((sql) => new PgFailureLimiter(sql, { kind: "token", limits }));
        assert.ok(a && b);
        assert.equal(await a.recordFailure("tok", 0), 0);
        assert.equal(await b.recordFailure("tok", 1), 60_000);
        assert.equal(await a.blockedFor("tok", 60_000), 1);
        assert.equal(await a.blockedFor("tok", 60_001), 0);
        assert.equal(await b.blockedFor("tok", 60_001), 0);
        assert.equal(await b.recordFailure("tok", 60_001), 0, "counting starts afresh");
        assert.equal(await a.recordFailure("tok", 60_002), 120_000, "the second strike doubles");
        assert.equal(await b.blockedFor("tok", 60_002), 120_000);
      } finally {
        await s.close();
      }
    });

    it("counts 50 concurrent failures from two servers exactly: no update is lost", async () => {
      const s = await servers(2, 8);
      try {
        const limits = { ...DEFAULT_LIMITS, maxFailures: 1000 };
        const errors: unknown[] = [];
        const options: PgLimiterOptions = {
          kind: "source",
          limits,
          maxConcurrent: 6,
          onError: (error) => errors.push(error),
        };
        const [a, b] = s.sql.map((sql) => new PgFailureLimiter(sql, options));
        assert.ok(a && b);
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).recordFailure(KEY, 5000 + i)),
        );
        assert.deepEqual(errors, [], "every failure reached the table");
        assert.ok(results.every((r) => r === 0));
        const [row] = await s.table();
        assert.equal(((row?.failures ?? []) as number[]).length, 50);
        assert.deepEqual(
          [...((row?.failures ?? []) as number[])].sort((x, y) => x - y),
          Array.from({ length: 50 }, (_, i) => 5000 + i),
        );
      } finally {
        await s.close();
      }
    });

    it("touches the table on success only for a key that failed on this server", async () => {
      const s = await servers(2);
      try {
        const a = counting(s.sql[0] as Sql);
        const b = counting(s.sql[1] as Sql);
        const onA = new PgFailureLimiter(a.sql, { kind: "token" });
        const onB = new PgFailureLimiter(b.sql, { kind: "token" });
        await onB.forget("never-failed");
        assert.equal(b.calls(), 0, "a success with no failure seen here costs no round trip");
        for (let i = 0; i < 3; i++) await onA.recordFailure("tok", i);
        await onB.forget("tok");
        assert.equal(b.calls(), 0, "B saw no failure of tok: it does not touch the table");
        assert.equal((await s.table()).length, 1, "so A's count stays, to age out");
        await onA.forget("tok");
        assert.equal((await s.table()).length, 0, "A saw the failures: its success clears them");
        const before = a.calls();
        await onA.forget("tok");
        assert.equal(a.calls(), before, "once only");
      } finally {
        await s.close();
      }
    });

    it("answers a known block from memory, refreshing the row at most every blockedRefreshMs", async () => {
      const s = await servers(1);
      try {
        const c = counting(s.sql[0] as Sql);
        const limiter = new PgFailureLimiter(c.sql, {
          kind: "source",
          limits: { ...DEFAULT_LIMITS, maxFailures: 0 },
          blockedRefreshMs: 10_000,
        });
        assert.equal(await limiter.recordFailure(KEY, 0), 60_000);
        const after1 = c.calls();
        for (let t = 1; t < 10_000; t += 1000) {
          assert.equal(await limiter.recordFailure(KEY, t), 60_000 - t);
        }
        assert.equal(c.calls(), after1, "no round trip while the block is known and fresh");
        assert.equal(await limiter.recordFailure(KEY, 10_000), 50_000);
        assert.equal(c.calls(), after1 + 1, "one transaction refreshes the row");
        const [row] = await s.table();
        assert.equal(row?.last_failure, 10_000);
      } finally {
        await s.close();
      }
    });

    it("prunes rows that stopped mattering, then the least recently failing beyond maxKeys", async () => {
      const s = await servers(1);
      try {
        const limits = { ...DEFAULT_LIMITS, maxKeys: 3 };
        const limiter = new PgFailureLimiter(s.sql[0] as Sql, { kind: "source", limits });
        const other = new PgFailureLimiter(s.sql[0] as Sql, { kind: "token", limits });
        for (let i = 0; i < 6; i++) await limiter.recordFailure(`10.0.0.${i}`, i * 1000);
        await other.recordFailure("tok", 0);
        assert.equal(await limiter.prune(5000), 3, "three beyond maxKeys, the oldest first");
        assert.deepEqual(
          (await s.table()).map((r) => r.key),
          ["10.0.0.3", "10.0.0.4", "10.0.0.5", "tok"],
        );
        // Expiry: the quiet period after the last failure, then a minute's grace.
        const expiry = 5000 + DEFAULT_LIMITS.quietMs + 60_000;
        assert.equal(await limiter.prune(expiry), 2, "10.0.0.3 and .4 have expired");
        assert.equal(await limiter.prune(expiry + 1), 1);
        assert.deepEqual(
          (await s.table()).map((r) => r.key),
          ["tok"],
          "each kind prunes its own",
        );
        for (let i = 0; i < 6; i++) await limiter.recordFailure(`10.0.1.${i}`, 0);
        assert.equal(await limiter.prune(0, 2), 2, "the work per call is bounded");
      } finally {
        await s.close();
      }
    });

    it("falls back to this server's count when a row is malformed", async () => {
      const s = await servers(1);
      try {
        const errors: unknown[] = [];
        const limiter = new PgFailureLimiter(s.sql[0] as Sql, {
          kind: "source",
          limits: { ...DEFAULT_LIMITS, maxFailures: 1 },
          onError: (error) => errors.push(error),
        });
        assert.equal(await limiter.recordFailure(KEY, 0), 0);
        await admin?.unsafe(
          `UPDATE ${s.schema}.auth_limits SET failures = '["x"]'::jsonb WHERE key = '${KEY}'`,
        );
        assert.equal(await limiter.recordFailure(KEY, 1), 60_000, "the local count blocks");
        assert.ok(errors[0] instanceof MalformedLimiterRow);
      } finally {
        await s.close();
      }
    });

    it("counts locally what finds the queue full, instead of taking more connections", async () => {
      const s = await servers(1);
      try {
        const errors: unknown[] = [];
        const limiter = new PgFailureLimiter(s.sql[0] as Sql, {
          kind: "source",
          maxConcurrent: 1,
          maxQueued: 1,
          onError: (error) => errors.push(error),
        });
        const results = await Promise.all([0, 1, 2].map((t) => limiter.recordFailure(KEY, t)));
        assert.deepEqual(results, [0, 0, 0]);
        assert.equal(errors.length, 1);
        assert.ok(errors[0] instanceof LimiterQueueFull);
        const [row] = await s.table();
        assert.equal(
          ((row?.failures ?? []) as number[]).length,
          2,
          "the other two reached the table",
        );
      } finally {
        await s.close();
      }
    });
  });
}

describe("PgFailureLimiter without its database", () => {
  // Nothing listens on port 1: every connection is refused at once.
  const unreachable = () =>
    postgres("postgres://keyhole@127.0.0.1:1/keyhole", {
      max: 1,
      connect_timeout: 2,
      onnotice: () => {},
    }) as unknown as Sql;

  it("keeps limiting with this server's own count, reporting the outage once", async () => {
    const down = unreachable();
    try {
      const errors: unknown[] = [];
      const limiter = new PgFailureLimiter(down, {
        kind: "source",
        onError: (error) => errors.push(error),
      });
      for (let i = 0; i < 10; i++) assert.equal(await limiter.recordFailure(KEY, i), 0);
      assert.equal(await limiter.recordFailure(KEY, 10), 60_000, "blocked all the same");
      assert.equal(await limiter.blockedFor(KEY, 20), 59_990);
      await limiter.forget(KEY);
      assert.equal(await limiter.blockedFor(KEY, 30), 0);
      assert.equal(errors.length, 1, "then the table is left alone for a while");
      assert.equal((errors[0] as { code?: unknown }).code, "ECONNREFUSED", "reported by code");
      await assert.rejects(limiter.prune(0), { code: "ECONNREFUSED" });
    } finally {
      await down.end({ timeout: 1 });
    }
  });

  it("tries the table again once the pause is over", async () => {
    const down = unreachable();
    try {
      const errors: unknown[] = [];
      const limiter = new PgFailureLimiter(down, {
        kind: "token",
        unreachablePauseMs: 0,
        onError: (error) => errors.push(error),
      });
      assert.equal(await limiter.recordFailure("tok", 0), 0);
      assert.equal(await limiter.recordFailure("tok", 1), 0);
      assert.equal(errors.length, 2);
    } finally {
      await down.end({ timeout: 1 });
    }
  });

  it("refuses a key that is no source or token id, and bad options", async () => {
    const down = postgres("postgres://keyhole@127.0.0.1:1/keyhole") as unknown as Sql;
    const limiter = new PgFailureLimiter(down, { kind: "source" });
    await assert.rejects(limiter.recordFailure("x".repeat(257), 0), RangeError);
    await assert.rejects(limiter.recordFailure("a b", 0), RangeError);
    assert.throws(() => new PgFailureLimiter(down, { kind: "other" as "source" }), RangeError);
    assert.throws(
      () => new PgFailureLimiter(down, { kind: "token", blockedRefreshMs: 16 * 60_000 }),
      RangeError,
      "a refresh slower than the quiet period would reset strikes under a flood",
    );
  });
});
