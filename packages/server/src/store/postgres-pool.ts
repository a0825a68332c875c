/**
 * The driver's connection pool (npm `postgres` 3.4.9), made to survive the database going away
 * and coming back (a restart, a crash, a fail-over) under load. The driver alone does not:
 * db-restart.test.ts restarts PostgreSQL under two servers and found each problem below.
 *
 * - **Statements on a connection that failed.** When a reserved connection's socket fails, the
 *   driver leaves it without a socket: a statement sent on it afterwards throws from a timer (an
 *   uncaught exception: the process ends) and never settles, and releasing it puts it back in
 *   the pool, where the next query meets the same fate (porsager/postgres#1154, #1208; its own
 *   `sql.begin()` sends a ROLLBACK there). So a `TxConnection` sends nothing more once its
 *   connection failed or closed, and does not release it: the pool takes it back on 'close'
 *   and reconnects it when needed. PostgreSQL rolls back the transaction of a connection that
 *   dies.
 * - **Between 'error' and 'close'.** The driver rejects the statements in flight on a socket's
 *   'error' but takes the connection out of use only on its 'close', an event-loop turn later:
 *   a statement sent in between is never settled (a ROLLBACK hung forever). So `TxConnection`
 *   also stops at the first connection error a statement meets.
 * - **Pools left unusable.** A connection that closes while a small write waits for its turn
 *   (the driver batches writes until the next `setImmediate`) keeps that stale write and never
 *   flushes again: its next attempts send nothing and wait for `connect_timeout` (5 s), many
 *   times over. A killed backend's error is handed to the next user of its connection. A
 *   `reserve()` whose connection attempt fails stays queued, and the next connection to open
 *   is handed to it, already refused: that connection is lost for good, and with enough of
 *   them every request waits forever. So after a connection failure the whole pool is
 *   replaced by a new one (`Pool`), and again when the database is back after an outage:
 *   operations under way finish on the old one, which then closes; nothing new is sent to it.
 * - **Reconnecting soon.** The driver waits longer and longer between attempts, up to 20 s;
 *   `reconnectBackoff` caps that at 1 s, so the database is found again within about a second.
 * - **A rejection nobody holds.** On each new connection the driver asks the server for its
 *   array types, with a promise nothing awaits: a connection that dies during that query
 *   rejects it unhandled, which by default ends the process. `guardDriverRejections` (installed
 *   by the server, not by tests: node:test reports such rejections itself) lets those pass.
 * - **Failing fast.** While the database is down each statement would wait for an attempt of a
 *   connection and queue behind the others (ten connections for every request): answers would
 *   take seconds, longer still for a host that drops packets (an attempt then lasts
 *   `connect_timeout`). After a connection failure one probe (`SELECT 1`) asks the database; if
 *   it fails too, statements are refused at once, without trying, until a probe (every 200 ms)
 *   is answered. A single broken connection (a killed backend) costs a probe, no refusals.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isKeyholeError, KeyholeError } from "@keyhole/core";
import type postgres from "postgres";
import { commitOutcomeUnknown, isConnectionError } from "./postgres-errors.js";

/** The connection pool's query function. */
export type Sql = postgres.Sql;
/** A connection reserved for one transaction. */
export type ReservedSql = postgres.ReservedSql;

/** How often a database believed down is asked again. */
export const PROBE_INTERVAL_MS = 200;

/**
 * How long a pool has to finish what it was doing, once replaced or closed, before its
 * connections are closed regardless (what is still waiting then fails: a 503). Operations under
 * way when the database failed rarely have anything left to finish; one stuck on a connection
 * left unusable would otherwise hold it up to `connect_timeout`, or for good.
 */
const END_TIMEOUT_S = 5;

/**
 * The wait before the pool's next attempt to connect, in seconds, after `retries` failed
 * attempts in a row (counted across the pool, reset by a success): the driver's own curve,
 * 10 ms growing threefold, with jitter (servers do not reconnect in step), capped at 1 s
 * rather than 20 s.
 */
export function reconnectBackoff(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 1);
}

/** A statement refused without trying: the database did not answer moments ago. */
export class DatabaseUnreachable extends Error {
  override readonly name = "DatabaseUnreachable";
  /** A connection code (postgres-errors.ts): answered 503 with cause `PG_UNREACHABLE`. */
  readonly code = "UNREACHABLE";
}

/** A statement not sent: its transaction's connection had failed (so it was rolled back). */
export class ConnectionLost extends Error {
  override readonly name = "ConnectionLost";
  readonly code = "CONNECTION_CLOSED";
}

/**
 * The pool the store and the shared authentication state use (`sql`), replaced after a
 * connection failure and refusing statements while the database is believed down (see above).
 */
export class Pool {
  readonly #create: () => Sql;
  #current: Sql;
  /** Which pool this is: failures of operations begun on an older one are old news. */
  #generation = 0;
  #state: "up" | "probing" | "down" = "up";
  /** The current pool saw connection failures while the database was being probed. */
  #dirty = false;
  /** Failures are acted on (`watch`): not while the store opens, which reports them itself. */
  #watching = false;
  #ended = false;
  readonly #retiring = new Set<Promise<void>>();
  /**
   * The current pool, behind a check: every statement (and `reserve`, `begin`) is refused at
   * once while the database is believed down. Fragments built with `sql(...)` (identifiers,
   * row lists) send nothing and pass.
   */
  readonly sql: Sql;

  /** `create` makes a new driver pool (the first one now, more after failures). */
  constructor(create: () => Sql) {
    this.#create = create;
    this.#current = create();
    const guarded = new Set<PropertyKey>(["unsafe", "file", "reserve", "begin"]);
    this.sql = new Proxy(this.#current, {
      apply: (_target, thisArg, args: unknown[]) => {
        if (isTemplate(args[0])) this.#check();
        return Reflect.apply(this.#current, thisArg, args);
      },
      get: (_target, property) => {
        if (property === POOL) return this;
        const current = this.#current;
        const value: unknown = Reflect.get(current, property);
        if (!guarded.has(property) || typeof value !== "function") return value;
        return (...args: unknown[]) => {
          this.#check();
          const result: unknown = Reflect.apply(value, current, args);
          if (property === "reserve") {
            // A reserve that could not connect leaves the pool unusable (see above).
            const generation = this.#generation;
            (result as Promise<unknown>).catch((error: unknown) => this.failed(error, generation));
          }
          return result;
        };
      },
    });
  }

  /** The current pool's generation, to pass to `failed` with an operation's error. */
  get generation(): number {
    return this.#generation;
  }

  /** True while statements are refused. */
  get down(): boolean {
    return this.#state === "down";
  }

  /**
   * An operation begun on pool `generation` failed with `error`: if it could not reach the
   * database, replace the pool and find out whether the database answers at all.
   */
  failed(error: unknown, generation: number): void {
    if (!this.#watching || this.#ended || generation !== this.#generation) return;
    if (!isConnectionError(error) || error instanceof DatabaseUnreachable) return;
    if (this.#state !== "up") {
      this.#dirty = true;
      return;
    }
    this.#state = "probing";
    this.#renew();
    void this.#probeUntilUp();
  }

  /** From now on, connection failures replace the pool and start probing (see above). */
  watch(): void {
    this.#watching = true;
  }

  /** Closes the pool (and any being replaced) once the statements in flight are done. */
  async end(): Promise<void> {
    this.#ended = true;
    await Promise.allSettled([this.#current.end({ timeout: END_TIMEOUT_S }), ...this.#retiring]);
  }

  #check(): void {
    if (this.#state === "down") throw new DatabaseUnreachable("the database did not answer");
  }

  #renew(): void {
    const old = this.#current;
    this.#current = this.#create();
    this.#generation += 1;
    const retired = old.end({ timeout: END_TIMEOUT_S }).catch(() => {});
    this.#retiring.add(retired);
    void retired.then(() => this.#retiring.delete(retired));
  }

  async #probeUntilUp(): Promise<void> {
    while (!this.#ended) {
      let reached = true;
      try {
        await this.#current`SELECT 1`;
      } catch (error) {
        // The database answered, if only with an error (busy, a timeout): it is reachable.
        reached = !isConnectionError(error);
      }
      if (reached) {
        // The pool that lived through the outage may hold connections it cannot use.
        if (this.#state === "down" || this.#dirty) this.#renew();
        this.#dirty = false;
        this.#state = "up";
        return;
      }
      this.#state = "down";
      await sleep(PROBE_INTERVAL_MS, undefined, { ref: false });
    }
  }
}

let rejectionsGuarded = false;

/**
 * Keeps an unhandled rejection with a connection failure from ending the process: it is the
 * driver's own (see above), about a connection the pool has already given up. `report` hears
 * its code. Every other unhandled rejection still ends the process, as by default. Installed
 * once per process.
 */
export function guardDriverRejections(report: (code: string) => void): void {
  if (rejectionsGuarded) return;
  rejectionsGuarded = true;
  process.on("unhandledRejection", (reason) => {
    const code = (reason as { code?: unknown } | null)?.code;
    if (typeof code === "string" && isConnectionError(reason) && !isKeyholeError(reason)) {
      report(code);
      return;
    }
    throw reason;
  });
}

/** How `TxConnection` finds the `Pool` behind a `Pool.sql`, to report failures to it. */
const POOL = Symbol("keyhole.pool");

function isTemplate(value: unknown): boolean {
  return Array.isArray((value as { raw?: unknown } | null)?.raw);
}

/** The driver's connection object, as far as we touch it (what `sql.begin()` uses). */
interface DriverConnection {
  onclose: ((error: unknown) => void) | null;
}

/**
 * One transaction on a reserved connection that knows when the connection failed or closed:
 * `sql` refuses statements from then on (`ConnectionLost`), `rollback` and `release` do
 * nothing. Statements must be sent one at a time (each awaited before the next): the driver
 * never settles one queued behind another when the connection closes (porsager/postgres#1186).
 */
export class TxConnection {
  readonly #conn: ReservedSql;
  readonly #driver: DriverConnection;
  readonly #onclose: () => void;
  readonly #report: (error: unknown) => void;
  #lost = false;
  /** The reserved connection, refusing statements once it has failed. */
  readonly sql: ReservedSql;

  private constructor(
    conn: ReservedSql,
    driver: DriverConnection,
    report: (error: unknown) => void,
  ) {
    this.#conn = conn;
    this.#driver = driver;
    this.#report = report;
    this.#onclose = () => {
      this.#lost = true;
    };
    driver.onclose = this.#onclose;
    this.sql = new Proxy(conn, {
      apply: (target, thisArg, args: unknown[]) => {
        this.#check();
        return Reflect.apply(target, thisArg, args);
      },
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if ((property !== "unsafe" && property !== "file") || typeof value !== "function") {
          return value;
        }
        return (...args: unknown[]) => {
          this.#check();
          return Reflect.apply(value, target, args);
        };
      },
    });
  }

  /**
   * Reserves a connection from `sql` and starts a transaction on it (READ COMMITTED, whatever
   * the role's default: the store's locking is written for it). `prelude`, a constant statement
   * without parameters (the transaction's locks), goes out with the BEGIN in one message. When
   * `sql` is a `Pool.sql`, connection failures are reported to that `Pool`.
   */
  static async begin(sql: Sql, prelude: string | null = null): Promise<TxConnection> {
    const pool = (sql as unknown as { [POOL]?: Pool })[POOL];
    const generation = pool?.generation ?? 0;
    const report = (error: unknown) => pool?.failed(error, generation);
    const conn = await sql.reserve();
    let driver: DriverConnection | null = null;
    let closed = false;
    const unsafe = conn.unsafe as unknown as (
      query: string,
      parameters: unknown[],
      options: { onexecute: (connection: DriverConnection) => boolean },
    ) => Promise<unknown>;
    const begin = "BEGIN ISOLATION LEVEL READ COMMITTED";
    try {
      // `onexecute` hands over the connection as BEGIN is written to it (as in `sql.begin()`):
      // no socket event can come between that and `onclose` being set, so no close is missed.
      await unsafe(prelude === null ? begin : `${begin}; ${prelude}`, [], {
        onexecute: (connection) => {
          driver = connection;
          connection.onclose = () => {
            closed = true;
          };
          return true; // as for a plain statement: the connection takes the next one
        },
      });
    } catch (error) {
      // A connection that failed goes back to the pool by itself (see `#failed`); one whose
      // prelude failed holds an aborted transaction, ended before it goes back.
      if (!closed && !isConnectionError(error)) {
        await conn`ROLLBACK`.then(
          () => conn.release(),
          () => {},
        );
      }
      report(error);
      throw error;
    }
    if (driver === null) {
      conn.release();
      throw new Error("the driver did not hand over the transaction's connection");
    }
    if (closed) {
      const error = new ConnectionLost("the connection closed after BEGIN");
      report(error);
      throw error;
    }
    return new TxConnection(conn, driver, report);
  }

  /** True once the connection failed or closed: the transaction is gone, rolled back. */
  get lost(): boolean {
    return this.#lost;
  }

  /** COMMIT; `ConnectionLost` when it was not even sent (then nothing was committed). */
  async commit(): Promise<void> {
    await this.commitAfter(null);
  }

  /**
   * Runs `last`, a statement without parameters (its text the caller's to make safe:
   * postgres-db.ts puts only fixed SQL and hex digits in it), and COMMIT, sent together as one
   * simple-protocol message: the database runs the COMMIT as soon as `last` is done, without
   * waiting for this process (postgres-db.ts: the audit append holds its lock that long only).
   * Gives the rows of `last`. Should `last` fail, the COMMIT is skipped and the transaction left
   * aborted, for the caller's `rollback`. `ConnectionLost` as for `commit`.
   */
  async commitAfter<T extends object>(last: string | null): Promise<T[]> {
    let result: T[] & { command?: string };
    try {
      result = (await this.sql.unsafe(last === null ? "COMMIT" : `${last}; COMMIT`)) as never;
    } catch (error) {
      this.#failed(error);
      throw error;
    }
    // The driver merges a row-less COMMIT into the result before it: `last`'s rows, tagged by
    // the COMMIT. PostgreSQL answers COMMIT with ROLLBACK for a transaction it had aborted:
    // nothing was kept. Any other answer is not understood, so not taken for either.
    if (result.command === "ROLLBACK") {
      throw new KeyholeError("unavailable", "the database rolled the transaction back");
    }
    if (result.command !== "COMMIT") {
      throw commitOutcomeUnknown(new Error(`COMMIT answered ${String(result.command)}`));
    }
    return result;
  }

  /**
   * ROLLBACK after `cause` ended the transaction early; never throws. Nothing is sent once the
   * connection failed (PostgreSQL rolls back the transaction of a connection that dies).
   */
  async rollback(cause: unknown): Promise<void> {
    this.#failed(cause);
    if (this.#lost) return;
    await this.#conn`ROLLBACK`.catch((error: unknown) => this.#failed(error));
  }

  /** Gives the connection back to the pool, unless it failed (the pool takes it back then). */
  release(): void {
    if (this.#driver.onclose === this.#onclose) this.#driver.onclose = null;
    if (!this.#lost) this.#conn.release();
  }

  #check(): void {
    if (this.#lost) throw new ConnectionLost("the transaction's connection failed");
  }

  /** A statement failed: if the connection failed, it is as good as closed (see above). */
  #failed(error: unknown): void {
    if (!isConnectionError(error)) return;
    this.#lost = true;
    this.#report(error);
  }
}

/**
 * Runs `fn` in a transaction on a reserved connection of `sql` and commits: `sql.begin()`
 * without its ROLLBACK on a failed connection (see above). Statements one at a time.
 */
export async function transaction<T>(sql: Sql, fn: (tx: ReservedSql) => Promise<T>): Promise<T> {
  const tx = await TxConnection.begin(sql);
  try {
    const value = await fn(tx.sql);
    await tx.commit();
    return value;
  } catch (error) {
    await tx.rollback(error);
    throw error;
  } finally {
    tx.release();
  }
}
