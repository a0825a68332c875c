/**
 * Issue 4, "Disk full and read-only database": a write the disk cannot take gets a coded 503
 * `storage_unavailable` with `Retry-After` (never a 500), rolls back whole, is logged once with
 * its SQLite code, takes `/readyz` down while `/healthz` stays up, and the server recovers
 * without a restart once the storage does. Reads that write no audit entry keep working; reads
 * that do (agent reads, owner secret reads) fail closed.
 *
 * The faults are injected on the server's own SQLite connection (`max_page_count` for a full
 * disk, `query_only` for a read-only database), so they run everywhere. When running as root
 * where `mount` works (CI), a real 2 MiB tmpfs is also filled up and, with the server stopped,
 * remounted read-only to check the start-up errors; the mount is always removed afterwards.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { openValue } from "@keyhole/core";
import Database from "better-sqlite3";
import { verifyAuditChain } from "./audit/verify.js";
import { STORAGE_NOT_READY_MS, SYNC_FAILED_CODE } from "./store/storage-errors.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call, errorCode, type HttpResult } from "./test-support/http.js";
import { agentGet, canary, type TestAgent, TestOwner } from "./test-support/owner.js";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));

type Pragma = (pragma: string) => unknown;

/** A test server whose SQLite connection the test can run PRAGMAs on. */
async function startFaultable(
  options: { dataDir?: string } = {},
): Promise<{ t: TestServer; pragma: Pragma; owner: TestOwner }> {
  let run: Pragma | null = null;
  const t = await startTestServer({
    ...options,
    metrics: true,
    internals: { storagePragma: (r) => (run = r) },
  });
  try {
    assert.ok(run !== null, "the pragma hook was called");
    return { t, pragma: run, owner: await TestOwner.initialized(t) };
  } catch (error) {
    // Not yet the caller's to close: a server left listening would hang the test file.
    await t.close({ keepDir: options.dataDir !== undefined });
    throw error;
  }
}

function pragmaValue(pragma: Pragma, name: string): unknown {
  const rows = pragma(name) as Record<string, unknown>[];
  return rows[0]?.[name.split(" ")[0] as string];
}

function putSecret(owner: TestOwner, name: string, value: Uint8Array): Promise<HttpResult> {
  return owner
    .secretPutBody(name, value)
    .then((body) => owner.request("PUT", `/v1/owner/secrets/${name}`, body));
}

/** A 503 `storage_unavailable` with `Retry-After`, as every write refused by the disk gets. */
function assertStorageRefusal(res: HttpResult, what: string): void {
  assert.equal(res.status, 503, `${what}: ${res.status} ${res.text}`);
  assert.equal(errorCode(res), "storage_unavailable", what);
  assert.equal(res.headers["retry-after"], "5", what);
}

/**
 * The answer after a failed fsync: `storage_unavailable` that promises nothing (the write may be
 * kept, and no retry will succeed before a restart), so no `Retry-After`.
 */
function assertSyncFailure(res: HttpResult, what: string): void {
  assert.equal(res.status, 503, `${what}: ${res.status} ${res.text}`);
  assert.equal(errorCode(res), "storage_unavailable", what);
  assert.match(res.text, /outcome is unknown/, what);
  assert.equal(res.headers["retry-after"], undefined, what);
}

function get(t: TestServer, path: string): Promise<HttpResult> {
  return call(t.url, { method: "GET", path });
}

function storageLines(t: TestServer): Record<string, unknown>[] {
  return t.logs
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === "storage failure");
}

/**
 * Writes secrets until the storage refuses them; returns what was acknowledged and the failed
 * answers. Values are 3 KB so a few pages go per write.
 */
async function fillUp(
  owner: TestOwner,
  prefix: string,
  maxWrites: number,
): Promise<{ acked: Map<string, Uint8Array>; refused: HttpResult[] }> {
  const acked = new Map<string, Uint8Array>();
  const refused: HttpResult[] = [];
  for (let i = 0; i < maxWrites && refused.length < 3; i++) {
    const value = canary(3000);
    const res = await putSecret(owner, `${prefix}${i}`, value);
    if (res.status === 201 || res.status === 200) acked.set(`${prefix}${i}`, value);
    else {
      assertStorageRefusal(res, `write ${prefix}${i}`);
      refused.push(res);
    }
  }
  assert.ok(refused.length > 0, "the storage filled up");
  return { acked, refused };
}

/** Every acknowledged value reads back as written, the chain verifies, no refusal has an entry. */
async function assertNothingLost(
  owner: TestOwner,
  acked: Map<string, Uint8Array>,
  refused: readonly HttpResult[],
): Promise<void> {
  for (const [name, value] of acked) {
    const secret = await owner.openSecret(name);
    const ref = { vaultId: owner.vaultId, secretId: secret.id, version: secret.version };
    assert.deepEqual(await openValue(ref, secret.dek, secret.value), value, `acknowledged ${name}`);
  }
  const entries = await owner.auditEntries();
  assert.deepEqual(verifyAuditChain(entries).ok, true, "the audit chain verifies");
  const ids = new Set(entries.map((e) => e.request_id));
  for (const res of refused) {
    assert.ok(!ids.has(String(res.headers["x-request-id"])), "a refused request left no entry");
  }
}

/**
 * Each refusal has exactly one "storage failure" line, and each such line belongs to a request
 * answered 503 (the owner helper's own reads, refused too, are among them).
 */
function assertOneLinePerRefusal(t: TestServer, refused: readonly HttpResult[]): void {
  const ids = storageLines(t).map((line) => String(line.request_id));
  assert.equal(new Set(ids).size, ids.length, "one line per refused request");
  for (const res of refused) assert.ok(ids.includes(String(res.headers["x-request-id"])));
  const answered503 = new Set(
    t.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === "request" && line.status === 503)
      .map((line) => String(line.request_id)),
  );
  for (const id of ids) assert.ok(answered503.has(id), "a logged failure was answered 503");
}

/** Audited reads of one secret until the disk refuses one; how many committed before that. */
async function smallWritesUntilRefused(owner: TestOwner): Promise<number> {
  for (let committed = 0; committed < 300; committed++) {
    const res = await owner.request("GET", "/v1/owner/secrets/base");
    if (res.status === 200) continue;
    assertStorageRefusal(res, "owner secret read");
    return committed;
  }
  assert.fail("small writes were never refused");
}

function assertNo500(t: TestServer): void {
  const bad = t.logs.filter((line) => /"status":500/.test(line));
  assert.deepEqual(bad, [], "no request was answered 500");
}

describe("storage faults", () => {
  it("a full database refuses writes with 503 storage_unavailable, loses nothing, and recovers", async (ctx) => {
    const { t, pragma, owner } = await startFaultable();
    try {
      await owner.putSecret("base", canary());
      const agent = await owner.createAgent("reader", ["base"]);
      assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/base")).status, 200);

      // Let the file grow by a few pages only: SQLite then answers SQLITE_FULL.
      const pages = Number(pragmaValue(pragma, "page_count"));
      pragma(`max_page_count = ${pages + 6}`);
      const { acked, refused } = await fillUp(owner, "f", 40);

      // Small writes may still fit in pages the file has: a malformed body's fallback entry
      // (the smallest) commits until the last audit page is full, then is refused, not a 500.
      let smallCommitted = 0;
      let smallRefused = false;
      for (let i = 0; i < 300 && !smallRefused; i++) {
        const res = await owner.request("PUT", "/v1/owner/secrets/junk", { nonsense: true });
        if (res.status === 400) {
          smallCommitted += 1;
          continue;
        }
        assertStorageRefusal(res, "malformed write");
        refused.push(res);
        smallRefused = true;
      }
      assert.ok(smallRefused, "small writes were refused too");
      const before = (await owner.auditEntries()).length;

      // Every audited request needs an entry written: all refused, coded, fail closed.
      const agentRead = await agentGet(t.url, agent, "/v1/agent/secrets/base");
      assertStorageRefusal(agentRead, "agent read");
      refused.push(agentRead);
      const ownerRead = await owner.request("GET", "/v1/owner/secrets/base");
      assertStorageRefusal(ownerRead, "owner secret read");
      refused.push(ownerRead);
      const ungrant = await owner.request("DELETE", "/v1/owner/grants/reader/base");
      assertStorageRefusal(ungrant, "grant remove");
      refused.push(ungrant);
      assert.equal((await owner.auditEntries()).length, before, "no entry was written");

      // What writes nothing keeps working; readiness says writes fail.
      assert.equal((await get(t, "/healthz")).status, 200);
      const ready = await get(t, "/readyz");
      assert.equal(ready.status, 503);
      assert.equal(errorCode(ready), "storage_unavailable");
      const list = await owner.request("GET", "/v1/owner/secrets");
      assert.equal(list.status, 200, "the owner's secret list needs no write");
      const names = (list.json as { secrets: { name: string }[] }).secrets.map((s) => s.name);
      for (const name of acked.keys()) assert.ok(names.includes(name), name);
      assert.equal((await get(t, "/v1/info")).status, 200);

      // One log line per refusal, naming the SQLite code and nothing else of the error.
      const lines = storageLines(t);
      assertOneLinePerRefusal(t, refused);
      for (const line of lines) {
        assert.equal(line.storage_code, "SQLITE_FULL");
        assert.deepEqual(Object.keys(line).sort(), [
          "answer",
          "level",
          "msg",
          "request_id",
          "storage_code",
          "time",
        ]);
      }
      const metrics = (await get(t, "/metrics")).text;
      const counted = /keyhole_storage_failures_total\{code="SQLITE_FULL"\} (\d+)\n/;
      assert.equal(Number(counted.exec(metrics)?.[1]), lines.length, "counted in /metrics");
      assert.equal(pragmaValue(pragma, "integrity_check"), "ok");

      // Readiness comes back by itself (a balancer may have stopped sending traffic) ...
      t.clock.advance(STORAGE_NOT_READY_MS);
      assert.equal((await get(t, "/readyz")).status, 200);
      assertStorageRefusal(await putSecret(owner, "again", canary()), "write after the window");
      assert.equal((await get(t, "/readyz")).status, 503);

      // ... and on the first write that commits once there is room again, without a restart.
      pragma("max_page_count = 1073741823");
      assert.equal((await putSecret(owner, "after", canary())).status, 201);
      assert.equal((await get(t, "/readyz")).status, 200);
      assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/base")).status, 200);
      await assertNothingLost(owner, acked, refused);
      assert.equal(pragmaValue(pragma, "integrity_check"), "ok");
      assertNo500(t);
      ctx.diagnostic(
        `storage-faults: max_page_count: ${acked.size} writes acknowledged, ` +
          `${smallCommitted} small writes committed after the first refusal, ` +
          `${refused.length} refused, nothing lost`,
      );
    } finally {
      await t.close();
    }
  });

  it("a read-only database refuses writes with 503 storage_unavailable and recovers", async () => {
    const { t, pragma, owner } = await startFaultable();
    try {
      await owner.putSecret("base", canary());
      const agent: TestAgent = await owner.createAgent("reader", ["base"]);
      pragma("query_only = ON");
      const write = await putSecret(owner, "blocked", canary());
      assertStorageRefusal(write, "write");
      const read = await agentGet(t.url, agent, "/v1/agent/secrets/base");
      assertStorageRefusal(read, "agent read");
      assert.equal((await get(t, "/healthz")).status, 200);
      assert.equal((await get(t, "/readyz")).status, 503);
      assert.equal((await owner.request("GET", "/v1/owner/secrets")).status, 200);
      assertOneLinePerRefusal(t, [write, read]);
      for (const line of storageLines(t)) assert.equal(line.storage_code, "SQLITE_READONLY");

      pragma("query_only = OFF");
      assert.equal((await agentGet(t.url, agent, "/v1/agent/secrets/base")).status, 200);
      assert.equal((await get(t, "/readyz")).status, 200);
      assert.equal((await owner.openSecret("base")).version, 1);
      assert.equal((await owner.request("GET", "/v1/owner/secrets/blocked")).status, 404);
      await assertNothingLost(owner, new Map(), [write, read]);
      assertNo500(t);
    } finally {
      await t.close();
    }
  });

  it("a failed fsync is final: 503 storage_unavailable for everything stored, not ready, until a restart", async () => {
    const fault = { fail: false };
    const t = await startTestServer({
      metrics: true,
      syncHook: (sync) =>
        fault.fail
          ? Promise.reject(Object.assign(new Error("EIO"), { code: SYNC_FAILED_CODE }))
          : sync(),
    });
    try {
      const owner = await TestOwner.initialized(t);
      assert.equal((await putSecret(owner, "before", canary())).status, 201);
      const agent = await owner.createAgent("reader", ["before"]);
      fault.fail = true;
      assertSyncFailure(await putSecret(owner, "lost", canary()), "the write whose sync failed");
      // The fault is gone, but the pages the kernel failed to write may be gone with it: nothing
      // from this connection is trusted again, reads included.
      fault.fail = false;
      assertSyncFailure(await putSecret(owner, "after", canary()), "a later write");
      assertSyncFailure(await agentGet(t.url, agent, "/v1/agent/secrets/before"), "agent read");
      assertSyncFailure(await owner.request("GET", "/v1/owner/secrets"), "owner listing");
      t.clock.advance(STORAGE_NOT_READY_MS * 2);
      const ready = await get(t, "/readyz");
      assert.equal(ready.status, 503, "not ready, however long it waits");
      assert.equal(errorCode(ready), "storage_unavailable");
      assert.equal((await get(t, "/healthz")).status, 200);
      assert.ok(storageLines(t).every((line) => line.storage_code === SYNC_FAILED_CODE));
      assertNo500(t);
    } finally {
      await t.close();
    }
  });

  it("a write lock held elsewhere is 503 unavailable with Retry-After 1, readiness unaffected", async () => {
    const { t, pragma, owner } = await startFaultable();
    const other = new Database(t.dbPath);
    try {
      await owner.putSecret("base", canary());
      const body = await owner.secretPutBody("blocked", canary());
      pragma("busy_timeout = 50");
      other.prepare("BEGIN IMMEDIATE").run();
      const write = await owner.request("PUT", "/v1/owner/secrets/blocked", body);
      assert.equal(write.status, 503, write.text);
      assert.equal(errorCode(write), "unavailable");
      assert.equal(write.headers["retry-after"], "1");
      assert.deepEqual(
        storageLines(t).map((line) => [line.storage_code, line.answer]),
        [["SQLITE_BUSY", "unavailable"]],
      );
      assert.equal((await get(t, "/readyz")).status, 200, "contention is not a storage fault");
      other.prepare("ROLLBACK").run();
      assert.equal((await putSecret(owner, "blocked", canary())).status, 201);
      assertNo500(t);
    } finally {
      other.close();
      await t.close();
    }
  });

  it("a real tmpfs: filling it is refused and survived; a full or read-only one stops start-up in one line", {
    skip: mountSkipReason(),
  }, async (ctx) => {
    const mount = mkdtempSync(join(tmpdir(), "keyhole-tmpfs-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mount]);
    let t: TestServer | null = null;
    try {
      // Ballast to delete later: the "someone freed some space" of a real outage.
      writeFileSync(join(mount, "ballast"), Buffer.alloc(512 * 1024));
      const dataDir = join(mount, "data");
      const started = await startFaultable({ dataDir });
      t = started.t;
      const { owner } = started;
      await owner.putSecret("base", canary());
      const agent = await owner.createAgent("reader", ["base"]);
      const { acked, refused } = await fillUp(owner, "f", 1000);
      assertStorageRefusal(await agentGet(t.url, agent, "/v1/agent/secrets/base"), "agent read");
      assert.equal((await get(t, "/healthz")).status, 200);
      assert.equal((await get(t, "/readyz")).status, 503);
      assert.equal((await owner.request("GET", "/v1/owner/secrets")).status, 200);
      for (const line of storageLines(t)) {
        assert.match(String(line.storage_code), /^SQLITE_(FULL|IOERR)/);
      }

      const smallAfter = await smallWritesUntilRefused(owner);
      rmSync(join(mount, "ballast"));
      assert.equal((await putSecret(owner, "after", canary())).status, 201);
      assert.equal((await get(t, "/readyz")).status, 200);
      await assertNothingLost(owner, acked, refused);
      assert.equal(pragmaValue(started.pragma, "integrity_check"), "ok");
      assertNo500(t);
      ctx.diagnostic(
        `storage-faults: 2 MiB tmpfs: ${acked.size} writes acknowledged, ${smallAfter} small ` +
          `writes committed after the first refusal, ${refused.length} refused, nothing lost; ` +
          `SQLite said ${[...new Set(storageLines(t).map((l) => l.storage_code))].join(", ")}`,
      );
      await t.close({ keepDir: true });
      t = null;

      // Start-up on a full disk, then on a read-only file system: one line, exit 1.
      try {
        writeFileSync(join(mount, "ballast"), Buffer.alloc(4 * 1024 * 1024));
      } catch {
        // Filled to the last block, as intended.
      }
      assertStartRefused(dataDir, /storage_unavailable: the disk holding .* is full \(E\w+\)/);
      rmSync(join(mount, "ballast"));
      execFileSync("mount", ["-o", "remount,ro", mount]);
      assertStartRefused(dataDir, /storage_unavailable: .* read-only .*\(EROFS\)/);
      assertStartRefused(join(mount, "fresh"), /storage_unavailable: .* read-only .*\(EROFS\)/);
    } finally {
      try {
        await t?.close({ keepDir: true });
      } finally {
        // A lazy unmount if something still holds it: never leave the mount behind.
        if (spawnSync("umount", [mount]).status !== 0) spawnSync("umount", ["-l", mount]);
        rmSync(mount, { recursive: true, force: true });
      }
    }
  });
});

/** Runs `main.js` on `dataDir` and expects exit 1 with one `keyhole server:` line, no stack. */
function assertStartRefused(dataDir: string, expected: RegExp): void {
  const child = spawnSync(process.execPath, [MAIN, "--data-dir", dataDir, "--port", "0"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  assert.equal(child.status, 1, child.stderr);
  const lines = child.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, child.stderr);
  assert.match(lines[0] ?? "", /^keyhole server: /);
  assert.match(lines[0] ?? "", expected);
}

/** Why the tmpfs test cannot run here, or false when it can (root, and `mount` works). */
function mountSkipReason(): string | false {
  if (process.getuid?.() !== 0) return "needs root to mount a tmpfs";
  const probe = mkdtempSync(join(tmpdir(), "keyhole-mount-probe-"));
  try {
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]);
    if (mounted.status !== 0) return "mount -t tmpfs does not work here";
    spawnSync("umount", [probe]);
    return false;
  } catch {
    return "mount is not available";
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
