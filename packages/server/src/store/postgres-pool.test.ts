// The pool under the PostgreSQL store when connections fail (postgres-pool.ts): a transaction
// whose connection dies leaves no uncaught exception and no connection behind, and the pool
// refuses at once while the database is unreachable, then finds it again by itself.
// db-restart.test.ts restarts a real PostgreSQL under running servers.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { pgTestUrl, skipWithoutPostgres, TestSchemas } from "../test-support/postgres.js";
import { Relay } from "../test-support/postgres-relay.js";
import { isConnectionError } from "./postgres-errors.js";
import {
  DatabaseUnreachable,
  Pool,
  PROBE_INTERVAL_MS,
  reconnectBackoff,
  type Sql,
  TxConnection,
  transaction,
} from "./postgres-pool.js";

describe("reconnectBackoff", () => {
  it("grows from about 10 ms and never waits more than a second", () => {
    for (let retries = 0; retries < 40; retries++) {
      const wait = reconnectBackoff(retries);
      assert.ok(wait > 0 && wait <= 1, `${retries}: ${wait}`);
    }
    assert.ok(reconnectBackoff(1) <= 0.03);
    assert.ok(reconnectBackoff(30) >= 0.5);
  });
});

/** Waits until `condition` holds, failing after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    assert.ok(performance.now() < deadline, `timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Fails the test if `promise` has not settled within `ms` (the driver bugs hang, not throw). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const url = pgTestUrl();

if (url === null) {
  skipWithoutPostgres("the PostgreSQL pool when connections fail");
} else {
  const schemas = new TestSchemas(url);
  after(async () => schemas.end());
  const admin = schemas.admin;
  const driver = (target: string, max = 2): Sql =>
    postgres(target, {
      max,
      connect_timeout: 2,
      backoff: reconnectBackoff,
      onnotice: () => {},
    }) as unknown as Sql;

  describe("a transaction whose connection dies", () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);

    it("fails with a connection error, leaves no uncaught exception and the pool usable", async () => {
      process.on("uncaughtException", onUncaught);
      const pool = new Pool(() => driver(url, 2));
      pool.watch();
      const sql = pool.sql;
      try {
        // Killed between statements (the next one must not be sent), and during one.
        for (const during of [false, true, false, true]) {
          const generation = pool.generation;
          const failure = await within(
            transaction(sql, async (tx) => {
              const [row] = await tx<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
              const kill = admin`SELECT pg_terminate_backend(${row?.pid ?? 0})`;
              if (during) {
                // `then` sends it now (a query is sent when first awaited), and catches its
                // failure at once (an unhandled rejection would count as uncaught).
                const slow = tx`SELECT pg_sleep(5)`.then(
                  () => null,
                  (e: unknown) => e,
                );
                await sleep(50);
                await kill;
                const failed = await slow;
                if (failed !== null) throw failed;
              } else {
                await kill;
                await sleep(50);
              }
              await tx`SELECT 1`;
            }).then(
              () => assert.fail("the transaction committed"),
              (error: unknown) => error,
            ),
            3_000,
            "the transaction",
          );
          assert.ok(isConnectionError(failure), String(failure));
          assert.ok(pool.generation > generation, "the pool was replaced");
        }
        await sleep(100);
        assert.deepEqual(uncaught, [], "no uncaught exception");
        // Both connections can be held at once again.
        const held = await within(
          Promise.all([TxConnection.begin(sql), TxConnection.begin(sql)]),
          3_000,
          "two reservations",
        );
        for (const tx of held) {
          await tx.sql`SELECT 1`;
          await tx.commit();
          tx.release();
        }
        assert.equal((await within(sql`SELECT 1 AS one`, 3_000, "a query"))[0]?.one, 1);
      } finally {
        process.off("uncaughtException", onUncaught);
        await pool.end();
      }
    });
  });

  describe("Pool", () => {
    it("refuses at once while the database is unreachable and finds it again by itself", async () => {
      const relay = new Relay(url);
      await relay.up();
      const pool = new Pool(() => driver(relay.url(url)));
      pool.watch();
      try {
        await pool.sql`SELECT 1`;
        const first = pool.generation;
        // An error that is not a connection failure changes nothing.
        pool.failed(Object.assign(new Error("duplicate"), { code: "23505" }), first);
        assert.equal(pool.generation, first);

        await relay.down();
        const error = await within(
          pool.sql`SELECT 1`.then(
            () => assert.fail("answered while down"),
            (e: unknown) => e,
          ),
          3_000,
          "a query while down",
        );
        assert.ok(isConnectionError(error), String(error));
        pool.failed(error, first);
        assert.equal(pool.generation, first + 1, "a new pool after a connection failure");
        // A failure of an operation begun on the old pool is old news.
        pool.failed(error, first);
        assert.equal(pool.generation, first + 1);
        await until(() => pool.down, 2_000, "the probe to fail");
        const started = performance.now();
        assert.throws(() => pool.sql`SELECT 1`, DatabaseUnreachable);
        await assert.rejects(TxConnection.begin(pool.sql), DatabaseUnreachable);
        assert.ok(performance.now() - started < 50, "refused without trying");

        await relay.up();
        await until(() => !pool.down, 1_000 + 3 * PROBE_INTERVAL_MS, "the database to be found");
        assert.equal((await pool.sql`SELECT 1 AS one`)[0]?.one, 1);
        const tx = await TxConnection.begin(pool.sql);
        await tx.commit();
        tx.release();
      } finally {
        const closing = performance.now();
        await pool.end();
        assert.ok(performance.now() - closing < 6_000, "closed in time");
        await relay.down();
      }
    });
  });
}
