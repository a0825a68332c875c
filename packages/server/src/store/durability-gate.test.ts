// The durability gate (durability-gate.ts) with a sync we finish by hand: no answer and no read
// result leaves before the commit it depends on is synced, one sync covers the commits made
// while the one before it ran, and a failed sync fails everything after it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import Database from "better-sqlite3";
import { DurabilityGate } from "./durability-gate.js";
import { GroupCommit, MAX_UNSYNCED } from "./group-commit.js";

/** A sync that finishes only when the test says so. */
class ManualSync {
  readonly pending: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  readonly sync = () =>
    new Promise<void>((resolve, reject) => this.pending.push({ resolve, reject }));
  finish(): void {
    const next = this.pending.shift();
    assert.ok(next, "a sync is running");
    next.resolve();
  }
  fail(error: unknown): void {
    this.pending.shift()?.reject(error);
  }
}

/** True once `promise` has settled (after letting pending callbacks run). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("durability gate", () => {
  let dir: string;
  let db: Database.Database;
  const insert = (n: number) => () => db.prepare("INSERT INTO t (n) VALUES (?)").run(n).changes;
  const count = () => (db.prepare("SELECT count(*) AS c FROM t").get() as { c: number }).c;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "keyhole-gate-"));
    db = new Database(join(dir, "t.db"));
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (n INTEGER PRIMARY KEY)");
  });
  after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers a write only after the sync that covers its commit", async () => {
    const manual = new ManualSync();
    const gate = new DurabilityGate(manual.sync, (error) => error);
    const writer = new GroupCommit(db, gate, (error) => error);
    const write = writer.run(insert(1));
    assert.equal(await settled(write), false, "committed but not yet synced: no answer");
    assert.equal(count(), 1, "the commit itself happened");
    manual.finish();
    assert.equal(await write, 1);
  });

  it("holds a read's result until what it could see is synced, and passes it straight when idle", async () => {
    const manual = new ManualSync();
    const gate = new DurabilityGate(manual.sync, (error) => error);
    assert.equal(gate.afterDurable("idle"), "idle", "nothing pending: no promise, no wait");
    gate.committed();
    const read = gate.afterDurable("seen");
    assert.ok(read instanceof Promise);
    assert.equal(await settled(read), false);
    manual.finish();
    assert.equal(await read, "seen");
  });

  it("commits the next batches while a sync runs, and covers them with one more sync", async () => {
    const manual = new ManualSync();
    const gate = new DurabilityGate(manual.sync, (error) => error);
    const writer = new GroupCommit(db, gate, (error) => error);
    const first = writer.run(insert(10));
    await settled(first);
    // Two more batches (two turns) while the first sync is still running.
    const second = writer.run(insert(11));
    await settled(second);
    const third = writer.run(insert(12));
    await settled(third);
    assert.equal(writer.stats.commits, 3);
    assert.equal(writer.stats.syncs, 1, "one sync at a time");
    manual.finish();
    assert.equal(await first, 1);
    assert.equal(await settled(second), false, "the first sync began before the second commit");
    assert.equal(writer.stats.syncs, 2, "the next sync started at once, for both batches");
    manual.finish();
    assert.deepEqual(await Promise.all([second, third]), [1, 1]);
  });

  it("fails the waiting answers, later writes and later reads once a sync fails", async () => {
    const manual = new ManualSync();
    const gate = new DurabilityGate(manual.sync, () => new Error("storage_unavailable"));
    const writer = new GroupCommit(db, gate, (error) => error);
    const write = writer.run(insert(20));
    await settled(write);
    manual.fail(Object.assign(new Error("EIO"), { code: "EIO" }));
    await assert.rejects(write, /storage_unavailable/);
    const before = count();
    await assert.rejects(writer.run(insert(21)), /storage_unavailable/);
    assert.equal(count(), before, "nothing more is committed");
    assert.throws(() => gate.afterDurable("late"), /storage_unavailable/);
    await writer.drained();
  });

  it("drained() waits for the sync of the last batch", async () => {
    const manual = new ManualSync();
    const gate = new DurabilityGate(manual.sync, (error) => error);
    const writer = new GroupCommit(db, gate, (error) => error);
    void writer.run(insert(30));
    const drained = writer.drained();
    assert.equal(await settled(drained), false);
    manual.finish();
    await drained;
  });

  it("sheds writes with 503 unavailable once MAX_UNSYNCED wait for a stalled fsync", async () => {
    const manual = new ManualSync();
    const gate = new DurabilityGate(manual.sync, (error) => error);
    const writer = new GroupCommit(db, gate, (error) => error);
    const accepted = Array.from({ length: MAX_UNSYNCED }, (_, i) => writer.run(insert(1000 + i)));
    const refused = writer.run(insert(5000));
    await assert.rejects(refused, (error: unknown) => {
      assert.ok(isKeyholeError(error));
      assert.equal(error.code, "unavailable");
      return true;
    });
    // The disk comes back: finish each sync as it is asked for until every write is answered.
    const all = Promise.all(accepted);
    while (!(await settled(all))) {
      if (manual.pending.length > 0) manual.finish();
    }
    assert.equal((await all).length, MAX_UNSYNCED);
    const later = writer.run(insert(5001));
    await settled(later);
    manual.finish();
    assert.equal(await later, 1, "accepted again once the backlog is synced");
  });

  it("a sync that throws at once fails the gate instead of wedging it", async () => {
    const gate = new DurabilityGate(
      () => {
        throw new Error("thrown, not rejected");
      },
      () => new Error("storage_unavailable"),
    );
    const writer = new GroupCommit(db, gate, (error) => error);
    await assert.rejects(writer.run(insert(6000)), /storage_unavailable/);
    await writer.drained();
  });

  it("refuses writes after close(), and still runs the queued ones", async () => {
    const gate = new DurabilityGate(
      () => Promise.resolve(),
      (error) => error,
    );
    const writer = new GroupCommit(db, gate, (error) => error);
    const queued = writer.run(insert(7000));
    writer.close();
    await assert.rejects(writer.run(insert(7001)), /closing/);
    assert.equal(await queued, 1);
  });
});
