import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Batcher } from "./postgres-batch.js";

/** A batcher whose batches finish when the test says so; records what each batch held. */
function controlled(limits: { batches: number; operations: number }) {
  const batches: number[][] = [];
  const finish: (() => void)[] = [];
  const batcher = new Batcher<number>(limits, (ops) => {
    batches.push([...ops]);
    return new Promise<void>((resolve) => finish.push(resolve));
  });
  /** Ends the oldest unfinished batch and lets the batcher start the next ones. */
  const finishOne = async () => {
    finish.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { batcher, batches, finishOne };
}

describe("Batcher", () => {
  it("runs a lone operation at once, as a batch of one", () => {
    const { batcher, batches } = controlled({ batches: 2, operations: 8 });
    batcher.add(1);
    assert.deepEqual(batches, [[1]]);
  });

  it("groups the operations that arrive while every batch is in flight", async () => {
    const { batcher, batches, finishOne } = controlled({ batches: 2, operations: 8 });
    for (let op = 1; op <= 6; op++) batcher.add(op);
    assert.deepEqual(batches, [[1], [2]], "two batches in flight, the rest wait");
    await finishOne();
    assert.deepEqual(batches[2], [3, 4, 5, 6], "the waiting ones go together, in order");
    batcher.add(7);
    assert.equal(batches.length, 3, "7 waits: two batches are in flight again");
    await finishOne();
    assert.deepEqual(batches[3], [7]);
  });

  it("puts no more than its limit in one batch", async () => {
    const { batcher, batches, finishOne } = controlled({ batches: 1, operations: 3 });
    for (let op = 1; op <= 8; op++) batcher.add(op);
    await finishOne();
    await finishOne();
    await finishOne();
    assert.deepEqual(batches, [[1], [2, 3, 4], [5, 6, 7], [8]]);
  });

  it("refuses limits that could never run anything", () => {
    const run = async () => {};
    assert.throws(() => new Batcher({ batches: 0, operations: 4 }, run), RangeError);
    assert.throws(() => new Batcher({ batches: 1, operations: 0 }, run), RangeError);
    assert.throws(() => new Batcher({ batches: Number.NaN, operations: 4 }, run), RangeError);
  });
});
