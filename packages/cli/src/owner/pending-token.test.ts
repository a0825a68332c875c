import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AgentToken, isKeyholeError } from "@keyhole/core";
import {
  discardPendingToken,
  pendingTokenPath,
  promotePendingToken,
  readPendingToken,
  writePendingToken,
} from "./pending-token.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyhole-pending-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const token = () => AgentToken.generate(new Uint8Array(16).fill(7));

test("the pending token is PATH.pending, mode 0600, and reads back as the same token", async () => {
  const target = join(dir, "a.token");
  const written = token();
  await writePendingToken(target, written);
  assert.equal(pendingTokenPath(target), `${target}.pending`);
  assert.equal((await stat(`${target}.pending`)).mode & 0o777, 0o600);
  const read = await readPendingToken(target);
  assert.equal(read?.encode(), written.encode());
  await assert.rejects(stat(target), "PATH itself is untouched");
});

test("no PATH.pending reads as null", async () => {
  assert.equal(await readPendingToken(join(dir, "none.token")), null);
});

test("promoting moves PATH.pending over PATH, replacing the old token", async () => {
  const target = join(dir, "b.token");
  await writeFile(target, "old\n", { mode: 0o600 });
  const written = token();
  await writePendingToken(target, written);
  await promotePendingToken(target);
  assert.equal(await readFile(target, "utf8"), `${written.encode()}\n`);
  assert.equal(await readPendingToken(target), null);
});

test("discarding removes PATH.pending and leaves PATH alone", async () => {
  const target = join(dir, "c.token");
  await writeFile(target, "old\n", { mode: 0o600 });
  await writePendingToken(target, token());
  await discardPendingToken(target);
  assert.equal(await readPendingToken(target), null);
  assert.equal(await readFile(target, "utf8"), "old\n");
});

test("a PATH.pending that is not a token is a config_error naming the file, not deleted", async () => {
  const target = join(dir, "d.token");
  await writeFile(`${target}.pending`, "kh1_not-a-token\n", { mode: 0o600 });
  await assert.rejects(readPendingToken(target), (error) => {
    assert.ok(isKeyholeError(error) && error.code === "config_error");
    assert.match(error.message, /d\.token\.pending does not hold an agent token/);
    assert.doesNotMatch(error.message, /not-a-token/);
    return true;
  });
  assert.equal(await readFile(`${target}.pending`, "utf8"), "kh1_not-a-token\n");
});

test("PATH.pending is read only as this user's private regular file, never through a link", async () => {
  const refused = async (name: string, why: RegExp) => {
    const target = join(dir, name);
    await assert.rejects(readPendingToken(target), (error) => {
      assert.ok(isKeyholeError(error) && error.code === "config_error");
      assert.match(error.message, why);
      return true;
    });
  };
  // A symbolic link (to a real token file): refused, not followed.
  const real = join(dir, "real.token");
  await writePendingToken(real, token());
  await symlink(pendingTokenPath(real), join(dir, "link.token.pending"));
  await refused("link.token", /is a symbolic link/);
  // A FIFO would block a plain read forever.
  execFileSync("mkfifo", [join(dir, "fifo.token.pending")]);
  await refused("fifo.token", /is not a regular file/);
  // Readable by others.
  await writePendingToken(join(dir, "open.token"), token());
  await chmod(join(dir, "open.token.pending"), 0o644);
  await refused("open.token", /readable or writable by others/);
  // Far larger than a token.
  await writeFile(join(dir, "big.token.pending"), "x".repeat(4096), { mode: 0o600 });
  await refused("big.token", /too large/);
});
