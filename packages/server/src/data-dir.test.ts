import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isKeyholeError } from "@keyhole/core";
import { RevokedTokens } from "./auth/revoked-tokens.js";
import {
  currentOwner,
  loadOrCreateKeyFile,
  loadOrCreateTextFile,
  prepareDataDir,
  readKeyFile,
} from "./data-dir.js";
import { DEFAULT_PORT, type ServerOptions, startServer } from "./server.js";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const POSIX = { skip: process.platform === "win32" ? "no modes or uids on Windows" : false };

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

  const configErrorLike = (pattern: RegExp) => (error: unknown) =>
    configError(error) && pattern.test((error as Error).message);
  // Another user, played through the owner parameter (the tests may not run as root).
  const someoneElse = (currentOwner() ?? 0) + 1;

  it(
    "refuses an existing data dir writable by others, with a planted private bootstrap code",
    POSIX,
    async () => {
      const dir = join(root, "planted");
      mkdirSync(dir);
      chmodSync(dir, 0o777);
      writeFileSync(join(dir, "bootstrap-code"), "0123456789abcdef0123456789abcdef\n", {
        mode: 0o600,
      });
      assert.throws(() => prepareDataDir(dir), configErrorLike(/writable by group or others/));
      await assert.rejects(startServer({ dataDir: dir, port: 0, logLevel: "silent" }), configError);
      chmodSync(dir, 0o770);
      assert.throws(() => prepareDataDir(dir), configErrorLike(/chmod 700/));
      chmodSync(dir, 0o750);
      assert.doesNotThrow(
        () => prepareDataDir(dir),
        "readable by the group is fine; writable is not",
      );
    },
  );

  it("refuses a data dir, key file or database owned by another user", POSIX, () => {
    const dir = join(root, "theirs");
    const files = prepareDataDir(dir);
    assert.throws(() => prepareDataDir(dir, someoneElse), configErrorLike(/owned by uid/));
    loadOrCreateKeyFile(files.pepper, 32);
    loadOrCreateKeyFile(files.auditKey, 32);
    loadOrCreateTextFile(files.bootstrapCode, () => "code");
    RevokedTokens.open(files.revokedTokens);
    assert.throws(
      () => loadOrCreateKeyFile(files.pepper, 32, someoneElse),
      configErrorLike(/owned by uid/),
    );
    assert.throws(
      () => loadOrCreateKeyFile(files.auditKey, 32, someoneElse),
      configErrorLike(/owned by uid/),
    );
    assert.throws(
      () => loadOrCreateTextFile(files.bootstrapCode, () => "x", someoneElse),
      configErrorLike(/owned by uid/),
    );
    assert.throws(
      () => RevokedTokens.open(files.revokedTokens, someoneElse),
      configErrorLike(/owned by uid/),
    );
  });

  it("refuses files really owned by another user (when the tests run as root)", {
    skip: process.getuid?.() === 0 ? false : "needs root to chown",
  }, async () => {
    const dir = join(root, "chowned");
    prepareDataDir(dir);
    chownSync(dir, 65534, 65534);
    await assert.rejects(
      startServer({ dataDir: dir, port: 0, logLevel: "silent" }),
      configErrorLike(/owned by uid 65534/),
    );
    chownSync(dir, 0, 0);
    loadOrCreateKeyFile(join(dir, "pepper"), 32);
    chownSync(join(dir, "pepper"), 65534, 65534);
    await assert.rejects(
      startServer({ dataDir: dir, port: 0, logLevel: "silent" }),
      configErrorLike(/pepper is owned by uid 65534/),
    );
  });

  it("refuses key files that are symbolic links, even to a private file", POSIX, () => {
    const dir = join(root, "links");
    const files = prepareDataDir(dir);
    const elsewhere = join(root, "elsewhere");
    mkdirSync(elsewhere, { mode: 0o700 });
    const target = join(elsewhere, "key");
    writeFileSync(target, new Uint8Array(32), { mode: 0o600 });
    writeFileSync(join(elsewhere, "code"), "0123\n", { mode: 0o600 });
    writeFileSync(join(elsewhere, "revoked"), "", { mode: 0o600 });
    symlinkSync(target, files.pepper);
    symlinkSync(join(elsewhere, "code"), files.bootstrapCode);
    symlinkSync(join(elsewhere, "revoked"), files.revokedTokens);
    const link = configErrorLike(/symbolic link/);
    assert.throws(() => loadOrCreateKeyFile(files.pepper, 32), link);
    assert.throws(() => loadOrCreateTextFile(files.bootstrapCode, () => "x"), link);
    assert.throws(() => RevokedTokens.open(files.revokedTokens), link);
    // A dangling link is refused too, not followed to create a file elsewhere.
    symlinkSync(join(elsewhere, "missing"), files.auditKey);
    assert.throws(() => loadOrCreateKeyFile(files.auditKey, 32));
    assert.deepEqual(readdirSync(elsewhere).sort(), ["code", "key", "revoked"]);
  });

  it("refuses a symbolic link as keyhole.db or as its journal", POSIX, async () => {
    const dir = join(root, "dblink");
    prepareDataDir(dir);
    const target = join(root, "real.db");
    writeFileSync(target, "", { mode: 0o600 });
    symlinkSync(target, join(dir, "keyhole.db"));
    assert.throws(() => prepareDataDir(dir), configErrorLike(/keyhole\.db is a symbolic link/));
    await assert.rejects(startServer({ dataDir: dir, port: 0, logLevel: "silent" }), configError);
    rmSync(join(dir, "keyhole.db"));
    symlinkSync(target, join(dir, "keyhole.db-wal"));
    assert.throws(() => prepareDataDir(dir), configErrorLike(/keyhole\.db-wal is a symbolic link/));
  });

  it("reports a refused data dir on one line with its code, without a stack trace", POSIX, () => {
    const dir = join(root, "open");
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const run = spawnSync(process.execPath, [MAIN, "--data-dir", dir, "--port", "0"], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /^keyhole server: config_error: the data directory .* must not be writable by group or others \(chmod 700\)\n$/,
    );
    assert.doesNotMatch(run.stderr, /\n\s+at /);
  });

  // Shared keys for servers on one database (--pepper-file, --audit-key-file): read with the
  // checks of the data directory's own key files, and never created.
  it("reads a shared key file with the same checks, and never creates one", POSIX, () => {
    const dir = join(root, "shared");
    mkdirSync(dir, { mode: 0o700 });
    const key = join(dir, "pepper");
    assert.throws(() => readKeyFile(key, 32), configErrorLike(/pepper does not exist/));
    assert.deepEqual(readdirSync(dir), [], "nothing was created");
    writeFileSync(key, new Uint8Array(32).fill(7), { mode: 0o600 });
    assert.deepEqual(readKeyFile(key, 32), new Uint8Array(32).fill(7));
    chmodSync(key, 0o640);
    assert.throws(() => readKeyFile(key, 32), configErrorLike(/chmod 600/));
    chmodSync(key, 0o600);
    assert.throws(() => readKeyFile(key, 32, someoneElse), configErrorLike(/owned by uid/));
    writeFileSync(key, new Uint8Array(33));
    assert.throws(() => readKeyFile(key, 32), configErrorLike(/exactly 32 raw bytes/));
    symlinkSync(key, join(dir, "link"));
    assert.throws(() => readKeyFile(join(dir, "link"), 32), configErrorLike(/symbolic link/));
  });

  it("refuses database options that do not fit together, before creating anything", async () => {
    const key = (name: string, fill: number) => {
      const path = join(root, name);
      writeFileSync(path, new Uint8Array(32).fill(fill), { mode: 0o600 });
      return path;
    };
    const pepperFile = key("db-pepper", 1);
    const auditKeyFile = key("db-audit-key", 2);
    const url = "postgres://keyhole:hunter2-secret@127.0.0.1:9/keyhole";
    const dataDir = join(root, "db-options");
    const refused = async (options: Partial<ServerOptions>, pattern: RegExp) => {
      const error = await startServer({ dataDir, port: 0, logLevel: "silent", ...options }).then(
        () => assert.fail("started"),
        (e: unknown) => e,
      );
      assert.ok(configErrorLike(pattern)(error), String(error));
      assert.doesNotMatch((error as Error).message, /hunter2|secret|@db|@127/, "never the URL");
    };
    await refused({ pepperFile }, /go with --database-url only/);
    await refused({ auditKeyFile }, /go with --database-url only/);
    await refused({ databaseSchema: "keyhole" }, /needs --database-url/);
    await refused({ databaseUrl: url }, /must use the same pepper and audit key/);
    await refused({ databaseUrl: url, pepperFile }, /--pepper-file and --audit-key-file/);
    await refused(
      { databaseUrl: "mysql://keyhole:hunter2-secret@db/x", pepperFile, auditKeyFile },
      /must start with postgres:\/\/ or postgresql:\/\//,
    );
    // An unencoded / in the password: the driver would take part of it for the host.
    await refused(
      { databaseUrl: "postgres://keyhole:hunter2/secret@db/x", pepperFile, auditKeyFile },
      /the database URL is malformed/,
    );
    for (const schema of ["", "Keyhole", "a,public", 'a"b', "1a", "x".repeat(64)]) {
      await refused(
        { databaseUrl: url, databaseSchema: schema, pepperFile, auditKeyFile },
        /the database schema must be/,
      );
    }
    await refused(
      { databaseUrl: url, pepperFile, auditKeyFile: key("db-copy", 1) },
      /hold the same key/,
    );
    assert.ok(!existsSync(dataDir), "no data directory was created");
    await refused(
      { databaseUrl: url, pepperFile, auditKeyFile: join(root, "db-missing") },
      /db-missing does not exist/,
    );
  });
});
