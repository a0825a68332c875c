import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { loadOrCreateKeyFile, loadOrCreateTextFile, prepareDataDir } from "./data-dir.js";
import { DEFAULT_PORT, startServer } from "./server.js";

describe("data directory", () => {
  const root = mkdtempSync(join(tmpdir(), "keyhole-datadir-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const configError = (error: unknown) => isKeyholeError(error) && error.code === "config_error";

  it("creates the directory 0700 and key files 0600, once, leaving no temporary files", () => {
    const files = prepareDataDir(join(root, "a", "data"));
    assert.equal(statSync(join(root, "a", "data")).mode & 0o777, 0o700);
    const pepper = loadOrCreateKeyFile(files.pepper, 32);
    assert.equal(statSync(files.pepper).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateKeyFile(files.pepper, 32), pepper);
    assert.equal(
      loadOrCreateTextFile(files.bootstrapCode, () => "code"),
      "code",
    );
    assert.equal(
      loadOrCreateTextFile(files.bootstrapCode, () => "other"),
      "code",
    );
    assert.deepEqual(readdirSync(join(root, "a", "data")).sort(), ["bootstrap-code", "pepper"]);
  });

  it("refuses a key file readable by others, or of the wrong length", () => {
    const files = prepareDataDir(join(root, "b"));
    writeFileSync(files.pepper, new Uint8Array(32), { mode: 0o644 });
    chmodSync(files.pepper, 0o644);
    assert.throws(() => loadOrCreateKeyFile(files.pepper, 32), configError);
    writeFileSync(files.auditKey, new Uint8Array(31), { mode: 0o600 });
    assert.throws(() => loadOrCreateKeyFile(files.auditKey, 32), configError);
  });

  it("defaults to port 8250 (8200 is Vault's), as the CLI and SDK do", () => {
    assert.equal(DEFAULT_PORT, 8250);
  });

  it("refuses to start on a data dir whose pepper others can read, and on bad options", async () => {
    const dir = join(root, "c");
    prepareDataDir(dir);
    writeFileSync(join(dir, "pepper"), new Uint8Array(32), { mode: 0o640 });
    chmodSync(join(dir, "pepper"), 0o640);
    await assert.rejects(startServer({ dataDir: dir, port: 0 }), configError);
    await assert.rejects(startServer({ dataDir: "", port: 0 }), configError);
    await assert.rejects(startServer({ dataDir: join(root, "d"), port: 70000 }), configError);
    await assert.rejects(
      startServer({ dataDir: join(root, "d"), port: 0, tlsCert: "x" }),
      configError,
    );
  });

  it("keeps the vault id, pepper and audit key across restarts", async () => {
    const dir = join(root, "e");
    const first = await startServer({ dataDir: dir, port: 0, logLevel: "silent" });
    await first.close();
    const second = await startServer({ dataDir: dir, port: 0, logLevel: "silent" });
    await second.close();
    assert.equal(second.vaultId, first.vaultId);
    assert.equal(second.bootstrapCode, first.bootstrapCode, "the code survives until init");
    assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });
});
