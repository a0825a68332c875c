import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isKeyholeError, newId } from "@keyhole/core";
import Database from "better-sqlite3";
import { runStoreContract } from "./contract.js";
import * as initial from "./migrations/sqlite/001-initial.js";
import { SQLITE_MIGRATIONS } from "./migrations/sqlite/index.js";
import { openSqliteStore } from "./sqlite.js";
import { translateError } from "./sqlite-rows.js";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "keyhole-sqlite-"));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

runStoreContract("sqlite", async () => {
  const dir = tempDir();
  let failAudit = false;
  const store = openSqliteStore({
    path: join(dir, "keyhole.db"),
    beforeAuditAppend: () => {
      if (failAudit) throw new Error("injected audit failure");
    },
  });
  return {
    store,
    setAuditFailure: (fail) => {
      failAudit = fail;
    },
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe("SQLite store on disk", () => {
  it("applies each migration once and is idempotent on reopen", async () => {
    const path = join(tempDir(), "keyhole.db");
    await openSqliteStore({ path }).close();
    await openSqliteStore({ path }).close();
    const db = new Database(path, { readonly: true });
    try {
      const rows = db.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all();
      assert.deepEqual(
        rows,
        SQLITE_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })),
      );
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    } finally {
      db.close();
    }
  });

  it("migrates a version-1 database: its versions get a NULL owner_sig, nothing is lost", async () => {
    const path = join(tempDir(), "keyhole.db");
    const old = new Database(path);
    old.exec(`CREATE TABLE schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    old.exec(initial.sql);
    old.prepare("INSERT INTO schema_migrations VALUES (1, 'initial', 0)").run();
    const id = newId("secret");
    old
      .prepare(
        "INSERT INTO secrets (id, name, current_version, created_at, updated_at) VALUES (?, 'old', 1, 1, 1)",
      )
      .run(id);
    old
      .prepare("INSERT INTO secret_versions VALUES (?, 1, ?, ?, 1)")
      .run(id, Buffer.from([1, 2, 3]), Buffer.alloc(101, 7));
    old.close();
    const store = openSqliteStore({ path });
    try {
      const version = await store.getSecretVersion(id, 1);
      assert.deepEqual(version?.value, new Uint8Array([1, 2, 3]));
      assert.equal(version?.ownerSig, null);
      assert.deepEqual(await store.listRetiredTokenIds(), []);
    } finally {
      await store.close();
    }
  });

  it("keeps data across close and reopen", async () => {
    const path = join(tempDir(), "keyhole.db");
    const first = openSqliteStore({ path });
    const vault = await first.ensureVault(newId("vault"), 1);
    await first.putSecretVersion(
      {
        id: newId("secret"),
        name: "kept",
        expectedVersion: 0,
        version: 1,
        value: new Uint8Array([1, 2, 3]),
        ownerWrap: new Uint8Array(101),
        ownerSig: new Uint8Array(64),
        grants: [],
      },
      1,
      { ts: 1, requestId: "r", actorType: "owner", actorId: "owner", clientIp: "", userAgent: "" },
    );
    const head = await first.auditHead();
    await first.close();
    const second = openSqliteStore({ path });
    try {
      assert.equal((await second.getVault())?.vaultId, vault.vaultId);
      assert.equal((await second.getSecretByName("kept"))?.version, 1);
      assert.deepEqual(await second.auditHead(), head);
    } finally {
      await second.close();
    }
  });

  it("creates the database file readable by its owner only", async () => {
    const path = join(tempDir(), "keyhole.db");
    await openSqliteStore({ path }).close();
    assert.equal(statSync(path).mode & 0o077, 0);
  });

  it("refuses a database migrated by a newer server", async () => {
    const path = join(tempDir(), "keyhole.db");
    await openSqliteStore({ path }).close();
    const db = new Database(path);
    db.prepare(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
    ).run();
    db.close();
    assert.throws(
      () => openSqliteStore({ path }),
      (error: unknown) => isKeyholeError(error) && error.code === "config_error",
    );
  });

  it("rejects edits and deletes of audit rows through the append-only triggers", async () => {
    const path = join(tempDir(), "keyhole.db");
    const store = openSqliteStore({ path });
    await store.appendAudit({
      ts: 1,
      requestId: "r",
      actorType: "anonymous",
      actorId: "",
      action: "auth.failed",
      result: "unauthenticated",
      agentId: "",
      secretId: "",
      secretVersion: 0,
      clientIp: "",
      userAgent: "",
      detail: "",
    });
    await store.close();
    const db = new Database(path);
    try {
      assert.throws(() => db.prepare("UPDATE audit SET detail = 'x'").run(), /append-only/);
      assert.throws(() => db.prepare("DELETE FROM audit").run(), /append-only/);
    } finally {
      db.close();
    }
  });

  it("rejects edits and deletes of retired token ids through the append-only triggers", async () => {
    const path = join(tempDir(), "keyhole.db");
    await openSqliteStore({ path }).close();
    const db = new Database(path);
    try {
      db.prepare("INSERT INTO retired_tokens VALUES (?, 'agt_x', 'revoke', 1)").run(
        Buffer.alloc(16, 1),
      );
      assert.throws(
        () => db.prepare("UPDATE retired_tokens SET retired_at = 2").run(),
        /append-only/,
      );
      assert.throws(() => db.prepare("DELETE FROM retired_tokens").run(), /append-only/);
    } finally {
      db.close();
    }
  });
});

describe("SQLite errors", () => {
  it("maps storage trouble to unavailable and leaves other errors alone", () => {
    for (const code of [
      "SQLITE_BUSY",
      "SQLITE_BUSY_TIMEOUT",
      "SQLITE_IOERR_WRITE",
      "SQLITE_FULL",
      "SQLITE_READONLY",
    ]) {
      const mapped = translateError(Object.assign(new Error("x"), { code }));
      assert.ok(
        isKeyholeError(mapped) && mapped.code === "unavailable" && mapped.status === 503,
        code,
      );
    }
    const constraint = Object.assign(new Error("x"), { code: "SQLITE_CONSTRAINT_UNIQUE" });
    assert.equal(translateError(constraint), constraint);
  });
});
