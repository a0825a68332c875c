import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { dataDirUser, lockDataDir } from "./data-lock.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyhole-lock-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const lockFile = () => join(dir, "server.lock");

test("the lock holds our pid (0600) and is gone after release", async () => {
  const lock = lockDataDir(dir);
  assert.equal((await readFile(lockFile(), "utf8")).trim(), String(process.pid));
  assert.equal((await stat(lockFile())).mode & 0o777, 0o600);
  lock.release();
  await assert.rejects(stat(lockFile()));
});

test("a lock held by a live process is refused; one left by a dead process is taken over", async () => {
  // pid 1 is always alive.
  await writeFile(lockFile(), "1\n");
  assert.equal(dataDirUser(dir), 1);
  assert.throws(() => lockDataDir(dir), /another keyhole server \(pid 1\)/);
  const dead = spawnSync(process.execPath, ["-e", "0"]).pid;
  await writeFile(lockFile(), `${dead}\n`);
  assert.equal(dataDirUser(dir), null);
  const lock = lockDataDir(dir);
  assert.equal((await readFile(lockFile(), "utf8")).trim(), String(process.pid));
  lock.release();
});

test("release leaves a lock that is no longer ours alone", async () => {
  const lock = lockDataDir(dir);
  await writeFile(lockFile(), "1\n");
  lock.release();
  assert.equal((await readFile(lockFile(), "utf8")).trim(), "1");
  await rm(lockFile());
});
