import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readAgentEnvFile, writeAgentEnvFile } from "./agent-env-file.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyhole-agent-env-"));
});
after(() => rm(dir, { recursive: true, force: true }));

const ENV = { UP_BASE_URL: "http://127.0.0.1:1/up", UP_API_KEY: "khc_x" };

test("the file is written 0600 and reads back the same", async () => {
  const path = join(dir, "a.env");
  writeAgentEnvFile(path, ENV);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal(
    await readFile(path, "utf8"),
    "UP_BASE_URL=http://127.0.0.1:1/up\nUP_API_KEY=khc_x\n",
  );
  assert.deepEqual(readAgentEnvFile(path), ENV);
});

test("a symbolic link planted at the path is replaced, not followed", async () => {
  const target = join(dir, "victim");
  await writeFile(target, "untouched");
  const path = join(dir, "link.env");
  await symlink(target, path);
  writeAgentEnvFile(path, ENV);
  assert.equal(await readFile(target, "utf8"), "untouched");
  assert.ok(!(await stat(path)).isSymbolicLink());
});

test("reading is strict: NAME=value lines, comments and blank lines only, no KEYHOLE_*", async () => {
  const path = join(dir, "r.env");
  await writeFile(path, "# from keyhole broker\n\nA=1\nB=x=y\n");
  assert.deepEqual(readAgentEnvFile(path), { A: "1", B: "x=y" });
  for (const bad of [
    "lower=1\n",
    "KEYHOLE_TOKEN=kh1\n",
    "A=1\nA=2\n",
    "export A=1\n",
    "\n",
    "A\n",
  ]) {
    await writeFile(path, bad);
    assert.throws(() => readAgentEnvFile(path), /config|not NAME=value|no variables/, bad);
  }
  assert.throws(() => readAgentEnvFile(join(dir, "missing")), /cannot read/);
  assert.throws(() => readAgentEnvFile(dir), /cannot read/, "a directory");
  assert.throws(() => readAgentEnvFile("/dev/zero"), /cannot read/, "not a regular file");
});
