/**
 * The failed-authentication limiter shared by several servers on one PostgreSQL database
 * (issue 6): the same rules as `FailureLimiter` (`nextLimiterState`), applied to one row per
 * (kind, key) of `auth_limits`, so a key's failures count together whichever server sees them,
 * and a block made on one server holds on all. All servers must use the same `LimiterOptions`:
 * whichever records a failure applies its own.
 *
 * - **Atomic.** A failure locks its key's row (creating it if missing) in one transaction, reads
 *   it, applies the transition and writes it back: concurrent failures from any server apply one
 *   after another, none lost.
 * - **Cheap on success.** `forget` runs on every successful agent authentication. It touches the
 *   table only for a key that failed *on this server* since its last success (the local
 *   limiter below knows them, bounded by `maxKeys`); otherwise it costs nothing. So a success on
 *   one server does not clear failures recorded through another: those age out of the window
 *   (and a block runs its course), exactly as when the key never succeeded.
 * - **Cheap while blocked.** Once this server knows a key is blocked, its further failures are
 *   answered from memory, refreshing the row's last failure at most every `blockedRefreshMs`
 *   (so its strikes do not reset under a flood that outlasts `quietMs`), instead of one locked
 *   write per failure on one hot row. (A block another server's `forget` lifted meanwhile
 *   still answers this server's *failures* 429 until then; valid credentials pass regardless.)
 * - **Bounded.** Pool connections: at most `maxConcurrent` operations of this limiter at once, at
 *   most `maxQueued` waiting; past that a failure is counted on this server only (see below), so
 *   a flood cannot take the pool from the store. Rows: `prune` (on the server's timer) deletes
 *   up to `limit` rows per call, first those that stopped mattering (`limiterStateExpiry`, plus
 *   `pruneGraceMs` for clock differences between servers), then the least recently failing
 *   beyond `maxKeys` per kind, as the in-memory limiter forgets its oldest key. So the table
 *   holds about `maxKeys` rows per kind, plus the keys first seen since the last prune.
 * - **Fail safe.** Every failure is also counted by a local `FailureLimiter`. When the table
 *   cannot be used (PostgreSQL unreachable, timeout, the queue full, a malformed row), the
 *   local answer is used: limits degrade to per-server ones, never to none, and the request is
 *   still a failure (401 or 429; the gate never turns a limiter problem into success). The
 *   cause goes to `onError`. After a connection error the table is left alone for
 *   `unreachablePauseMs` (5 s): the driver waits longer and longer between reconnection
 *   attempts (up to 1 s, store/postgres-pool.ts), and failures should not queue behind it, one
 *   report each.
 *
 * Keys are client sources (IPv4 addresses, IPv6 /64s) and token ids (base64url): public
 * identifiers, never an auth key. Times are each server's clock (ms), as everywhere else.
 */

import type { Sql } from "../store/postgres-db.js";
import { isConnectionError } from "../store/postgres-errors.js";
import { transaction } from "../store/postgres-pool.js";
import { OneAtATime } from "./one-at-a-time.js";
import {
  type AuthLimiter,
  DEFAULT_LIMITS,
  FailureLimiter,
  type LimiterOptions,
  type LimiterState,
  limiterStateExpiry,
  nextLimiterState,
} from "./rate-limit.js";

/** Which limiter a row belongs to; the gate has one of each. */
export type LimiterKind = "source" | "token";

/** How to build a shared limiter. */
export interface PgLimiterOptions {
  readonly kind: LimiterKind;
  /** The rules; the same on every server. Default `DEFAULT_LIMITS`. */
  readonly limits?: LimiterOptions;
  /** Operations of this limiter on the pool at once; default 2. */
  readonly maxConcurrent?: number;
  /** Operations waiting for one of those; past it a failure is counted locally. Default 256. */
  readonly maxQueued?: number;
  /** How often a known block refreshes its row's last failure; default 60 s, ≤ `quietMs`. */
  readonly blockedRefreshMs?: number;
  /** How long past its expiry a row is kept, for clocks that differ between servers; 60 s. */
  readonly pruneGraceMs?: number;
  /** How long after a connection error only the local count answers; default 5 s. */
  readonly unreachablePauseMs?: number;
  /**
   * Told of each shared operation that failed (the answer then came from the local limiter):
   * a PostgreSQL or connection error, `MalformedLimiterRow`, or `LimiterQueueFull` (the queue
   * was full: a flood; count it rather than log each). Log by name and code only, like every
   * unexpected error (log.ts): a PostgreSQL message can quote a row's values.
   */
  readonly onError?: (error: unknown) => void;
}

/** The most failure times one row may hold (the table's CHECK says the same). */
const MAX_STORED_FAILURES = 10_000;
/** Sources and token ids are short; anything longer is a bug, not a key. */
const KEY_PATTERN = /^[\x21-\x7e]{0,256}$/;

interface LimitRow {
  failures: unknown;
  blocked_until: unknown;
  strikes: unknown;
  last_failure: unknown;
}

/** A row that is not what this code writes: the shared state is not trusted, the local is. */
export class MalformedLimiterRow extends Error {
  readonly code = "KEYHOLE_MALFORMED_LIMITER_ROW";
}

/** What this server learned of a block, to answer further failures without the table. */
interface KnownBlock {
  until: number;
  /** When this server last wrote the row's last failure (−∞: learned by a read). */
  refreshedAt: number;
}

/** Failed-authentication limits shared through PostgreSQL. */
export class PgFailureLimiter implements AuthLimiter {
  readonly #sql: Sql;
  readonly #kind: LimiterKind;
  readonly #limits: LimiterOptions;
  readonly #refreshMs: number;
  readonly #graceMs: number;
  readonly #pauseMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #permits: Permits;
  /** Fallback, and the keys that failed here since their last success (for `forget`). */
  readonly #local: FailureLimiter;
  /** Blocks this server knows of, oldest first; at most `maxKeys`. */
  readonly #blocks = new Map<string, KnownBlock>();
  /** Real time (not the request clock) until which the table is believed unreachable. */
  #pausedUntil = Number.NEGATIVE_INFINITY;
  readonly #pruning = new OneAtATime();

  constructor(sql: Sql, options: PgLimiterOptions) {
    if (options.kind !== "source" && options.kind !== "token") {
      throw new RangeError("a shared limiter's kind is 'source' or 'token'");
    }
    const limits = options.limits ?? DEFAULT_LIMITS;
    const refreshMs = options.blockedRefreshMs ?? 60_000;
    checkCount("maxConcurrent", options.maxConcurrent ?? 2, 1);
    checkCount("maxQueued", options.maxQueued ?? 256, 0);
    checkCount("maxFailures", limits.maxFailures, 0, MAX_STORED_FAILURES - 1);
    checkCount("maxKeys", limits.maxKeys, 1);
    checkCount("pruneGraceMs", options.pruneGraceMs ?? 60_000, 0);
    checkCount("unreachablePauseMs", options.unreachablePauseMs ?? 5000, 0);
    // Refreshing less often than the quiet period would let a blocked flood reset its strikes.
    checkCount("blockedRefreshMs", refreshMs, 0, limits.quietMs);
    this.#sql = sql;
    this.#kind = options.kind;
    this.#limits = limits;
    this.#refreshMs = refreshMs;
    this.#graceMs = options.pruneGraceMs ?? 60_000;
    this.#pauseMs = options.unreachablePauseMs ?? 5000;
    this.#onError = options.onError ?? (() => {});
    this.#permits = new Permits(options.maxConcurrent ?? 2, options.maxQueued ?? 256);
    this.#local = new FailureLimiter(limits);
  }

  /**
   * Records one failure; resolves to the block now in force (ms, 0 for none). A database
   * problem never rejects (the local count answers); a key that is no source or token id does
   * (a bug: the request then fails with 500, still never succeeds).
   */
  async recordFailure(key: string, now: number): Promise<number> {
    checkKey(key);
    const local = this.#local.recordFailure(key, now);
    const known = this.#blocks.get(key);
    if (known !== undefined && known.until > now && now - known.refreshedAt < this.#refreshMs) {
      return known.until - now;
    }
    const shared = await this.#shared((sql) => this.#recordShared(sql, key, now));
    if (shared === null) return local;
    this.#blocks.delete(key);
    if (shared > 0) this.#noteBlock(key, { until: now + shared, refreshedAt: now });
    return shared;
  }

  /** Milliseconds until `key` is unblocked; 0 when not. The local state answers on a problem. */
  async blockedFor(key: string, now: number): Promise<number> {
    checkKey(key);
    const known = this.#blocks.get(key);
    if (known !== undefined && known.until > now) return known.until - now;
    const shared = await this.#shared(async (sql) => {
      const [row] = await sql<{ blocked_until: unknown }[]>`
        SELECT blocked_until FROM auth_limits WHERE kind = ${this.#kind} AND key = ${key}`;
      return row === undefined ? 0 : Math.max(0, safeInteger(row.blocked_until) - now);
    });
    if (shared === null) return this.#local.blockedFor(key, now);
    if (shared > 0) {
      // Learned by a read: the next failure still writes the row.
      const refreshedAt = known?.refreshedAt ?? Number.NEGATIVE_INFINITY;
      this.#noteBlock(key, { until: now + shared, refreshedAt });
    }
    return shared;
  }

  /**
   * Forgets a key's failures after it authenticated successfully: here, and in the table when
   * it failed on this server since its last success (else no round trip). Never rejects: a
   * delete that fails leaves the counts to age out.
   */
  async forget(key: string): Promise<void> {
    this.#blocks.delete(key);
    if (!this.#local.tracks(key)) return;
    this.#local.forget(key);
    await this.#shared(async (sql) => {
      await sql`DELETE FROM auth_limits WHERE kind = ${this.#kind} AND key = ${key}`;
      return 0;
    });
  }

  /**
   * Deletes up to `limit` rows of this kind: those that stopped mattering, then the least
   * recently failing beyond `maxKeys`. Resolves to the number deleted (call again soon when it
   * equals `limit`); rejects when PostgreSQL does (log it by name and code). A call while the
   * previous one still runs (a slow database and a timer) does nothing and resolves to 0.
   */
  async prune(now: number, limit = 1000): Promise<number> {
    checkCount("limit", limit, 1);
    return this.#pruning.run(() => this.#prune(now, limit), 0);
  }

  async #prune(now: number, limit: number): Promise<number> {
    for (const [key, block] of this.#blocks) {
      if (block.until <= now) this.#blocks.delete(key);
    }
    const kind = this.#kind;
    const cut = now - this.#graceMs;
    // The condition is repeated outside the subquery: a row a failure updates meanwhile is
    // re-checked after its lock is released, and kept when it matters again.
    const expired = await this.#sql`
      DELETE FROM auth_limits WHERE kind = ${kind} AND expires_at < ${cut} AND key IN (
        SELECT key FROM auth_limits WHERE kind = ${kind} AND expires_at < ${cut} LIMIT ${limit})`;
    const room = limit - expired.count;
    if (room <= 0) return expired.count;
    const [edge] = await this.#sql<{ last_failure: unknown }[]>`
      SELECT last_failure FROM auth_limits WHERE kind = ${kind}
      ORDER BY last_failure DESC OFFSET ${this.#limits.maxKeys} LIMIT 1`;
    if (edge === undefined) return expired.count;
    const oldest = safeInteger(edge.last_failure);
    const evicted = await this.#sql`
      DELETE FROM auth_limits WHERE kind = ${kind} AND last_failure <= ${oldest} AND key IN (
        SELECT key FROM auth_limits WHERE kind = ${kind} AND last_failure <= ${oldest}
        ORDER BY last_failure LIMIT ${room})`;
    return expired.count + evicted.count;
  }

  /** One failure, applied to the key's row under its lock. */
  async #recordShared(sql: Sql, key: string, now: number): Promise<number> {
    const kind = this.#kind;
    const o = this.#limits;
    // Not `sql.begin()`: it sends a ROLLBACK on a connection that closed (postgres-pool.ts).
    return transaction(sql, async (tx) => {
      // Inserts a blank row (no failures, last failure now: the same as no state) or, when the
      // row exists, updates nothing; either way the row is locked until COMMIT, so concurrent
      // failures for this key, from every server, apply one after another.
      const [row] = await tx<LimitRow[]>`
        INSERT INTO auth_limits
          (kind, key, failures, blocked_until, strikes, last_failure, expires_at)
        VALUES (${kind}, ${key}, '[]', 0, 0, ${now}, ${now})
        ON CONFLICT (kind, key) DO UPDATE SET strikes = auth_limits.strikes
        RETURNING failures, blocked_until, strikes, last_failure`;
      const { state, blockedMs } = nextLimiterState(toState(row), now, o);
      await tx`
        UPDATE auth_limits SET
          failures = ${tx.json([...state.failures])},
          blocked_until = ${state.blockedUntil},
          strikes = ${state.strikes},
          last_failure = ${state.lastFailure},
          expires_at = ${limiterStateExpiry(state, o)}
        WHERE kind = ${kind} AND key = ${key}`;
      return blockedMs;
    });
  }

  /**
   * Runs a shared operation; null when it failed, there was no room, or the table was
   * unreachable moments ago (then use the local state).
   */
  async #shared(fn: (sql: Sql) => Promise<number>): Promise<number | null> {
    if (performance.now() < this.#pausedUntil) return null;
    try {
      return await this.#permits.run(() => fn(this.#sql));
    } catch (error) {
      if (isConnectionError(error)) this.#pausedUntil = performance.now() + this.#pauseMs;
      this.#onError(error);
      return null;
    }
  }

  #noteBlock(key: string, block: KnownBlock): void {
    this.#blocks.delete(key);
    while (this.#blocks.size >= this.#limits.maxKeys) {
      const oldest = this.#blocks.keys().next().value;
      if (oldest === undefined) break;
      this.#blocks.delete(oldest);
    }
    this.#blocks.set(key, block);
  }
}

/** A queue full of shared operations: the failure is counted locally. */
export class LimiterQueueFull extends Error {
  readonly code = "KEYHOLE_LIMITER_QUEUE_FULL";
}

/** At most `max` operations at once, at most `maxWaiting` waiting their turn. */
class Permits {
  readonly #max: number;
  readonly #maxWaiting: number;
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  constructor(max: number, maxWaiting: number) {
    this.#max = max;
    this.#maxWaiting = maxWaiting;
  }

  /** Runs `fn` when a permit is free; throws `LimiterQueueFull` when too many wait already. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active < this.#max) {
      this.#active += 1;
    } else {
      if (this.#waiting.length >= this.#maxWaiting) throw new LimiterQueueFull("queue full");
      // The permit is handed over by the operation that ends (active stays the same).
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#active -= 1;
      else next();
    }
  }
}

function toState(row: LimitRow | undefined): LimiterState {
  if (row === undefined) throw new MalformedLimiterRow("the row vanished under its lock");
  const failures = row.failures;
  if (
    !Array.isArray(failures) ||
    failures.length > MAX_STORED_FAILURES ||
    !failures.every((t) => Number.isSafeInteger(t))
  ) {
    throw new MalformedLimiterRow("malformed failure times");
  }
  return {
    failures: failures as number[],
    blockedUntil: safeInteger(row.blocked_until),
    strikes: safeInteger(row.strikes),
    lastFailure: safeInteger(row.last_failure),
  };
}

/** A BIGINT or INTEGER column: a number on the store's pool (postgres-db.ts), else refused. */
function safeInteger(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new MalformedLimiterRow("a time or count that is not a safe integer");
  }
  return value;
}

function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key)) throw new RangeError("a limiter key is at most 256 visible ASCII");
}

function checkCount(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}`);
  }
}
