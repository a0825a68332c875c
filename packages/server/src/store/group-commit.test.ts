import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { DurabilityGate } from "./durability-gate.js";
import { GroupCommit } from "./group-commit.js";
import { WalSync } from "./wal-sync.js";

describe("group commit", () => {
  let dir: string;
  let db: Database.Database;
  let writer: GroupCommit;
  let wal: WalSync;
  /** Every call of the writer's onTransactionReset, in order. */
  const resets: string[] = [];
  const insert = (n: number) => () => db.prepare("INSERT INTO t (n) VALUES (?)").run(n).changes;
  const rows = () =>
    (db.prepare("SELECT n FROM t ORDER BY n").all() as { n: number }[]).map((r) => r.n);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "keyhole-group-"));
    db = new Database(join(dir, "t.db"));
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (n INTEGER PRIMARY KEY)");
    db.pragma("synchronous = NORMAL");
    wal = new WalSync(join(dir, "t.db"));
    const same = (error: unknown) => error;
    writer = new GroupCommit(db, new DurabilityGate(() => wal.sync(), same), same, {
      maxBatch: 4,
      onTransactionReset: () => resets.push(db.inTransaction ? "in" : "out"),
    });
  });
  after(() => {
    db.close();
    wal.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs the writes of one turn in one commit, and answers each after it", async () => {
    const before = writer.stats;
    const results = await Promise.all([1, 2, 3].map((n) => writer.run(insert(n))));
    assert.deepEqual(results, [1, 1, 1]);
    assert.deepEqual(rows(), [1, 2, 3]);
    assert.deepEqual(writer.stats, {
      commits: before.commits + 1,
      operations: before.operations + 3,
      syncs: before.syncs + 1,
      reruns: before.reruns,
    });
  });

  it("rolls back only the write that throws; the others commit and see each other", async () => {
    const outcomes = await Promise.allSettled([
      writer.run(insert(10)),
      writer.run(() => {
        insert(11)();
        throw new Error("refused after writing");
      }),
      // Sees the earlier write of its batch, not the rolled-back one.
      writer.run(() => rows().filter((n) => n >= 10)),
    ]);
    assert.equal(outcomes[0]?.status, "fulfilled");
    assert.equal(outcomes[1]?.status, "rejected");
    assert.deepEqual((outcomes[2] as PromiseFulfilledResult<number[]>).value, [10]);
    assert.deepEqual(
      rows().filter((n) => n >= 10),
      [10],
    );
  });

  it("runs a batch with no failure once, and reruns one with a failure with savepoints", async () => {
    const before = writer.stats;
    resets.length = 0;
    await Promise.all([writer.run(insert(20)), writer.run(insert(21))]);
    assert.equal(writer.stats.reruns, before.reruns, "no failure: no rerun");
    assert.deepEqual(resets, ["in"], "told once, at BEGIN");

    resets.length = 0;
    let runs = 0;
    const outcomes = await Promise.allSettled([
      writer.run(insert(22)),
      writer.run(() => {
        runs += 1;
        insert(23)();
        throw new Error("refused after writing");
      }),
      writer.run(insert(24)),
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    assert.equal(writer.stats.reruns, before.reruns + 1);
    assert.equal(runs, 2, "the failing write ran once in each pass");
    // BEGIN, the whole rollback, BEGIN again, the rollback to the failed write's savepoint.
    assert.deepEqual(resets, ["in", "out", "in", "in"]);
    assert.deepEqual(
      rows().filter((n) => n >= 20 && n < 30),
      [20, 21, 22, 24],
    );
  });

  it("splits a burst into batches of at most maxBatch, in order", async () => {
    const before = writer.stats;
    await Promise.all(Array.from({ length: 10 }, (_, i) => writer.run(insert(100 + i))));
    assert.equal(writer.stats.commits - before.commits, 3);
    assert.deepEqual(
      rows().filter((n) => n >= 100),
      Array.from({ length: 10 }, (_, i) => 100 + i),
    );
  });

  it("fails every write of a batch whose transaction SQLite abandons, keeping none", async () => {
    // A second connection holds the write lock: BEGIN IMMEDIATE cannot start.
    const other = new Database(join(dir, "t.db"));
    other.pragma("busy_timeout = 0");
    db.pragma("busy_timeout = 0");
    other.exec("BEGIN IMMEDIATE");
    try {
      const outcomes = await Promise.allSettled([writer.run(insert(200)), writer.run(insert(201))]);
      assert.deepEqual(
        outcomes.map((o) => o.status),
        ["rejected", "rejected"],
      );
      assert.match(String((outcomes[0] as PromiseRejectedResult).reason), /SQLITE_BUSY|locked/);
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.deepEqual(
      rows().filter((n) => n >= 200),
      [],
    );
    assert.equal(await writer.run(insert(202)), 1, "the next batch works");
  });

  it("drained() resolves after a burst that leaves one write for a last batch", async () => {
    // maxBatch is 4: five writes make a batch of four and a batch of one.
    const writes = Array.from({ length: 5 }, (_, i) => writer.run(insert(400 + i)));
    const drained = writer.drained();
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error("drained() never resolved")), 2_000).unref(),
    );
    await Promise.race([drained, timeout]);
    assert.equal((await Promise.all(writes)).length, 5);
  });

  it("refuses an asynchronous write (its awaits would escape the transaction)", async () => {
    await assert.rejects(
      writer.run(async () => insert(500)()),
      /must be synchronous/,
    );
    assert.deepEqual(
      rows().filter((n) => n === 500),
      [],
    );
  });

  it("drained() waits for queued writes", async () => {
    let done = false;
    void writer.run(insert(300)).then(() => {
      done = true;
    });
    await writer.drained();
    assert.equal(done, true);
  });
});
