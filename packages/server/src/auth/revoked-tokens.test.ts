import assert from "node:assert/strict";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { canary } from "../test-support/owner.js";
import { RevokedTokens } from "./revoked-tokens.js";

const hex = (id: Uint8Array) => Buffer.from(id).toString("hex");

describe("revoked-tokens file", () => {
  const root = mkdtempSync(join(tmpdir(), "keyhole-revoked-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const fresh = () => join(root, `revoked-${++n}`);
  const configError = (pattern?: RegExp) => (error: unknown) =>
    isKeyholeError(error) &&
    error.code === "config_error" &&
    (pattern === undefined || pattern.test(error.message));

  it("is created empty with mode 0600, and appends one lower-case hex id per line", () => {
    const path = fresh();
    const list = RevokedTokens.open(path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readFileSync(path, "utf8"), "");
    const a = canary(16);
    const b = canary(16);
    list.record([a]);
    list.record([b, a]);
    assert.equal(readFileSync(path, "utf8"), `${hex(a)}\n${hex(b)}\n`);
    assert.equal(list.has(a) && list.has(b), true);
    assert.equal(list.has(canary(16)), false);
    const reopened = RevokedTokens.open(path);
    assert.equal(reopened.size, 2);
    assert.equal(reopened.has(a) && reopened.has(b), true);
    assert.deepEqual([...reopened.tokenIds()].map(hex).sort(), [hex(a), hex(b)].sort());
  });

  it("says whether it created the file, and with ifMissing 'refuse' does not create one", () => {
    const path = fresh();
    assert.throws(
      () => RevokedTokens.open(path, undefined, "refuse"),
      configError(/is missing but the vault is initialised/),
    );
    assert.throws(() => statSync(path), /ENOENT/);
    assert.equal(RevokedTokens.open(path).created, true);
    assert.equal(RevokedTokens.open(path, undefined, "refuse").created, false);
  });

  it("accepts blank lines and a last line without a newline, and appends after it", () => {
    const path = fresh();
    const a = canary(16);
    const b = canary(16);
    writeFileSync(path, `\n${hex(a)}\n\n${hex(b)}`, { mode: 0o600 });
    const list = RevokedTokens.open(path);
    assert.equal(list.size, 2);
    const c = canary(16);
    list.record([c]);
    assert.equal(RevokedTokens.open(path).has(c), true);
    assert.equal(readFileSync(path, "utf8").endsWith(`${hex(b)}\n${hex(c)}\n`), true);
  });

  it("refuses to load a garbled line, naming the file and line, rather than skip it", () => {
    const id = hex(canary(16));
    for (const [text, line] of [
      [`${id}\nnot-a-token\n`, 2],
      [`${id.toUpperCase()}\n`, 1],
      [`${id.slice(0, 31)}\n`, 1],
      [`${id}0\n`, 1],
      [`${id}\r\n`, 1],
      [` ${id}\n`, 1],
      [`${id}\n${id.slice(0, 7)}`, 2],
    ] as const) {
      const path = fresh();
      writeFileSync(path, text, { mode: 0o600 });
      assert.throws(
        () => RevokedTokens.open(path),
        configError(new RegExp(`${path} line ${line} is not a token id`)),
        JSON.stringify(text),
      );
    }
  });

  it("refuses a file group or others can read, and a directory in its place", () => {
    for (const mode of [0o640, 0o604, 0o644]) {
      const path = fresh();
      writeFileSync(path, "", { mode: 0o600 });
      chmodSync(path, mode);
      assert.throws(() => RevokedTokens.open(path), configError(/chmod 600/));
    }
    const dir = fresh();
    mkdirSync(dir);
    assert.throws(() => RevokedTokens.open(dir), configError(/is not a regular file/));
  });

  it("keeps an id refused in memory when its append fails, and writes it on the next one", () => {
    const path = fresh();
    const list = RevokedTokens.open(path);
    const a = canary(16);
    list.record([a]);
    // A directory in the file's place makes the append fail, even as root.
    rmSync(path);
    mkdirSync(path);
    const b = canary(16);
    assert.throws(() => list.record([b]));
    assert.equal(list.has(b), true);
    rmSync(path, { recursive: true });
    writeFileSync(path, `${hex(a)}\n`, { mode: 0o600 });
    list.record([]);
    assert.equal(readFileSync(path, "utf8"), `${hex(a)}\n${hex(b)}\n`);
  });

  it("reconcile appends the retired ids the database has and the file lacks", async () => {
    const path = fresh();
    const list = RevokedTokens.open(path);
    const known = canary(16);
    const lost = canary(16);
    list.record([known]);
    const store = { listRetiredTokenIds: async () => [known, lost] };
    assert.equal(await list.reconcile(store), 1);
    assert.equal(readFileSync(path, "utf8"), `${hex(known)}\n${hex(lost)}\n`);
    assert.equal(await list.reconcile(store), 0);
    assert.equal(RevokedTokens.open(path).has(lost), true);
  });
});
