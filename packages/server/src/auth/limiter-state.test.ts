// The limiter's rules as a pure function (rate-limit.ts), which the in-memory and the shared
// (PostgreSQL) limiters both apply: the same cases as FailureLimiter's own tests.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_LIMITS,
  type LimiterOptions,
  type LimiterState,
  limiterStateExpiry,
  nextLimiterState,
} from "./rate-limit.js";

/** One key's state moved by the pure function, as a row would be. */
function key(options: LimiterOptions = DEFAULT_LIMITS) {
  let state: LimiterState | undefined;
  return {
    fail(now: number): number {
      const next = nextLimiterState(state, now, options);
      state = next.state;
      return next.blockedMs;
    },
    blockedFor(now: number): number {
      return state !== undefined && state.blockedUntil > now ? state.blockedUntil - now : 0;
    },
    get state(): LimiterState | undefined {
      return state;
    },
  };
}

describe("nextLimiterState", () => {
  it("blocks after more than maxFailures in the window, for baseBlockMs", () => {
    const k = key();
    for (let i = 0; i < 10; i++) assert.equal(k.fail(1000 + i), 0);
    assert.equal(k.fail(1010), 60_000);
    assert.equal(k.blockedFor(1010 + 59_999), 1);
    assert.equal(k.blockedFor(1010 + 60_000), 0);
  });

  it("forgets failures older than the window", () => {
    const k = key();
    for (let i = 0; i < 10; i++) k.fail(i);
    assert.equal(k.fail(60_000), 0, "the first failure left the window");
  });

  it("doubles the block on each repeat, up to maxBlockMs, and resets after a quiet period", () => {
    const k = key({ ...DEFAULT_LIMITS, maxFailures: 1, maxBlockMs: 200_000 });
    let t = 0;
    const strike = () => {
      k.fail(t);
      const block = k.fail(t);
      t += block;
      return block;
    };
    assert.deepEqual([strike(), strike(), strike(), strike()], [60_000, 120_000, 200_000, 200_000]);
    t += DEFAULT_LIMITS.quietMs + 1;
    assert.equal(strike(), 60_000);
  });

  it("does not count failures while blocked, but keeps the strikes alive", () => {
    const o = { ...DEFAULT_LIMITS, maxFailures: 0, quietMs: 1000, maxBlockMs: 10_000_000 };
    const k = key(o);
    assert.equal(k.fail(0), 60_000);
    // Failing every 900 ms through the block: never quiet for 1000 ms, so the strike stays.
    for (let t = 900; t < 60_000; t += 900) assert.equal(k.fail(t), 60_000 - t);
    assert.deepEqual(k.state?.failures, []);
    assert.equal(k.fail(60_000), 120_000, "the second block doubles");
  });

  it("never changes the state it is given", () => {
    const before: LimiterState = { failures: [1, 2], blockedUntil: 0, strikes: 1, lastFailure: 2 };
    const copy = structuredClone(before);
    nextLimiterState(before, 3, { ...DEFAULT_LIMITS, maxFailures: 2 });
    nextLimiterState(before, 3, DEFAULT_LIMITS);
    assert.deepEqual(before, copy);
  });

  it("treats a blank state last failing now as no state", () => {
    const blank: LimiterState = { failures: [], blockedUntil: 0, strikes: 0, lastFailure: 500 };
    assert.deepEqual(
      nextLimiterState(blank, 500, DEFAULT_LIMITS),
      nextLimiterState(undefined, 500, DEFAULT_LIMITS),
    );
  });

  it("expires a state once it can no longer block, count or keep a strike", () => {
    const o = { ...DEFAULT_LIMITS, maxFailures: 0 };
    const { state } = nextLimiterState(undefined, 1000, o);
    const expiry = limiterStateExpiry(state, o);
    assert.equal(expiry, 1000 + o.quietMs, "the quiet period outlasts the 60 s block");
    // Just after expiry the key behaves exactly as a new one.
    assert.deepEqual(
      nextLimiterState(state, expiry + 1, o).blockedMs,
      nextLimiterState(undefined, expiry + 1, o).blockedMs,
    );
    const long = { ...o, baseBlockMs: 3_600_000 };
    const blocked = nextLimiterState(undefined, 0, long).state;
    assert.equal(limiterStateExpiry(blocked, long), 3_600_000, "a long block outlasts the quiet");
  });
});
