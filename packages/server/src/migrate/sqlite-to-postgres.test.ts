// `keyhole migrate` (issue 6): a SQLite vault with real data, built through the store, copied to
// a fresh PostgreSQL schema; every Store read through PostgreSQL must then equal SQLite's, agents
// keep working and the chain keeps growing from the migrated head. Also the refusals (a target
// in use, a tampered chain, a running server, a revoked token live again) and the rollback of
// a failure in the middle.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isKeyholeError, newId } from "@keyhole/core";
import Database from "better-sqlite3";
import type postgres from "postgres";
import { auditKeyFromSeed } from "../audit/audit-key.js";
import { verifyAuditChain } from "../audit/verify.js";
import { pepperKid } from "../auth/pepper.js";
import { auditEntryView } from "../routes/views.js";
import {
  bytes,
  grantFor,
  newAgent,
  newToken,
  request,
  secretWrite,
  T0,
} from "../store/contract-fixtures.js";
import { POSTGRES_MIGRATIONS } from "../store/migrations/postgres/index.js";
import { SQLITE_MIGRATIONS } from "../store/migrations/sqlite/index.js";
import { openPostgresStore } from "../store/postgres.js";
import { openSqliteStore } from "../store/sqlite.js";
import type { AgentPrincipal, AuditRecord, NewAgent, NewToken, Store } from "../store/store.js";
import { runWithoutPostgres } from "../test-support/no-postgres.js";
import { pgTestUrl, skipWithoutPostgres, TestSchemas } from "../test-support/postgres.js";
import { type MigrateSummary, migrateSqliteToPostgres } from "./sqlite-to-postgres.js";
import {
  COPIED_POSTGRES_VERSION,
  COPIED_SQLITE_VERSION,
  POSTGRES_TABLES_NOT_COPIED,
  TABLES,
} from "./tables.js";

const url = pgTestUrl();
const schemas = url === null ? null : new TestSchemas(url);
const admin = schemas?.admin ?? null;

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "keyhole-migrate-"));
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await schemas?.end();
});

/** A fresh, empty schema; dropped by the returned function. */
async function freshSchema(): Promise<{ schema: string; drop: () => Promise<void> }> {
  if (schemas === null) throw new Error("no PostgreSQL test server");
  return schemas.fresh("m");
}

/** Rows per copied table of a schema (tables missing are absent). */
async function rowCounts(schema: string): Promise<Record<string, number>> {
  const sql = admin as postgres.Sql;
  const counts: Record<string, number> = {};
  const tables = await sql<{ table_name: string }[]>`
    SELECT table_name FROM information_schema.tables WHERE table_schema = ${schema}`;
  for (const { table_name: name } of tables) {
    if (!TABLES.some((t) => t.name === name)) continue;
    const [row] = await sql`SELECT count(*)::int AS n FROM ${sql(schema)}.${sql(name)}`;
    counts[name] = row?.n as number;
  }
  return counts;
}

/** The target as the migrations left it: every copied table empty, the head at genesis. */
async function assertUntouched(schema: string): Promise<void> {
  const counts = await rowCounts(schema);
  assert.equal(Object.keys(counts).length, TABLES.length, "the migrations ran");
  assert.ok(
    Object.values(counts).every((n) => n === 0),
    JSON.stringify(counts),
  );
  assert.equal(await auditHeadSeq(schema), 0);
}

async function auditHeadSeq(schema: string): Promise<number> {
  const sql = admin as postgres.Sql;
  const [row] = await sql`SELECT seq::int AS seq FROM ${sql(schema)}.audit_head`;
  return row?.seq as number;
}

/** Every entry, page by page through the Store. */
async function allAudit(store: Store): Promise<AuditRecord[]> {
  const all: AuditRecord[] = [];
  for (;;) {
    const page = await store.listAudit({ after: all.at(-1)?.seq ?? 0, limit: 1000 });
    all.push(...page);
    if (page.length < 1000) return all;
  }
}

/** "Now" for the reads compared: after every time the vault was built with. */
const NOW = T0 + 100_000;

/** Owner-made entries appended in bulk, past the first page of 1,000 rows. */
const FILLER_ENTRIES = 1_800;

interface Vault {
  readonly dir: string;
  readonly path: string;
  /** `ci`: a live agent with a grant of `db-password`. */
  readonly ci: { agent: NewAgent; token: NewToken; principal: AgentPrincipal };
  readonly dbPasswordV3: Uint8Array;
  readonly retired: Uint8Array[];
}

/**
 * A vault built through the SQLite store: three versions of a secret, a limited grant part
 * spent, an expiring agent, a revoked one and one rotated twice (retirements interleaved, so
 * their order matters), agent reads at distinct times, and enough audit entries for several
 * pages.
 */
async function buildVault(): Promise<Vault> {
  const dir = tempDir();
  const path = join(dir, "keyhole.db");
  const store = openSqliteStore({ path });
  let ts = T0;
  // Each entry a millisecond after the last; `agent`: made by that agent (its last use).
  const req = (agent?: NewAgent) =>
    request({
      ts: ++ts,
      requestId: `req-${ts}`,
      ...(agent === undefined ? {} : { actorType: "agent" as const, actorId: agent.id }),
    });
  try {
    await store.ensureVault(newId("vault"), T0);
    await store.initVault(bytes(32), bytes(32), req());
    const dbPassword = secretWrite("db-password");
    const apiKey = secretWrite("api-key");
    await store.putSecretVersion(dbPassword, ts, req());
    await store.putSecretVersion(apiKey, ts, req());
    await store.putSecretVersion(secretWrite("unused"), ts, req());

    const ci = newAgent("ci");
    const ciToken = newToken();
    await store.createAgent(ci, ciToken, [grantFor(ci, dbPassword.id, 1)], ts, req());
    let value = dbPassword.value;
    for (const version of [2, 3]) {
      value = bytes(60 + version);
      await store.putSecretVersion(
        secretWrite("db-password", {
          id: dbPassword.id,
          expectedVersion: version - 1,
          version,
          value,
          grants: [grantFor(ci, dbPassword.id, version)],
        }),
        ts,
        req(),
      );
    }

    const deployer = newAgent("deployer", { allowedCidrs: ["10.0.0.0/8"] });
    const deployerToken = newToken();
    await store.createAgent(deployer, deployerToken, [], ts, req());
    await store.addGrant({ ...grantFor(deployer, apiKey.id, 1), maxUses: 5 }, ts, req());
    const deployerPrincipal = { agentId: deployer.id, tokenId: deployerToken.tokenId };
    for (let i = 0; i < 2; i++) {
      assert.ok(await store.getSecretForAgent(deployerPrincipal, "api-key", ts, req(deployer)));
    }
    const temp = newAgent("temp", { expiresAt: T0 + 50_000 });
    await store.createAgent(temp, newToken(), [grantFor(temp, apiKey.id, 1, T0 + 60)], ts, req());

    const old = newAgent("old");
    const oldToken = newToken();
    await store.createAgent(old, oldToken, [grantFor(old, apiKey.id, 1)], ts, req());
    const oldPrincipal = { agentId: old.id, tokenId: oldToken.tokenId };
    assert.ok(await store.getSecretForAgent(oldPrincipal, "api-key", ts, req(old)));

    const rot = newAgent("rot");
    const rotTokens = [newToken(), newToken(), newToken()] as const;
    await store.createAgent(rot, rotTokens[0], [], ts, req());
    let encPk = rot.encPk;
    const rotate = async (token: NewToken) => {
      const next = bytes(32);
      const update = { agentId: rot.id, expectedEncPk: encPk, encPk: next, keySig: bytes(64) };
      await store.rotateAgent({ ...update, createdAt: ts }, token, [], ts, req());
      encPk = next;
    };
    await rotate(rotTokens[1]);
    await store.revokeAgent(old.id, ts, req());
    await rotate(rotTokens[2]);

    const principal = { agentId: ci.id, tokenId: ciToken.tokenId };
    for (let i = 0; i < 120; i++) {
      assert.ok(await store.getSecretForAgent(principal, "db-password", ts, req(ci)));
    }
    // In rounds: the store refuses more than 1,024 writes waiting for their fsync.
    for (let done = 0; done < FILLER_ENTRIES; done += 600) {
      const appends: Promise<unknown>[] = [];
      for (let i = done; i < Math.min(done + 600, FILLER_ENTRIES); i++) {
        const entry = { action: "secret.list", result: "ok", agentId: "", secretId: "" };
        appends.push(store.appendAudit({ ...req(), ...entry, secretVersion: 0, detail: "" }));
      }
      await Promise.all(appends);
    }
    return {
      dir,
      path,
      ci: { agent: ci, token: ciToken, principal },
      dbPasswordV3: value,
      retired: [rotTokens[0].tokenId, oldToken.tokenId, rotTokens[1].tokenId],
    };
  } finally {
    await store.close();
  }
}

/** Versions written before SQLite migration 2 have no owner signature: a NULL to copy. */
function dropOwnerSig(path: string, secretName: string): void {
  const raw = new Database(path);
  try {
    raw
      .prepare(
        `UPDATE secret_versions SET owner_sig = NULL
         WHERE secret_id = (SELECT id FROM secrets WHERE name = ?)`,
      )
      .run(secretName);
  } finally {
    raw.close();
  }
}

/** Rows per table, read from the SQLite file directly. */
function sqliteCounts(path: string): Record<string, number> {
  const raw = new Database(path, { readonly: true });
  try {
    return Object.fromEntries(
      TABLES.map((t) => [
        t.name,
        (raw.prepare(`SELECT count(*) AS n FROM ${t.name}`).get() as { n: number }).n,
      ]),
    );
  } finally {
    raw.close();
  }
}

/** A copy of the vault's database in a data directory of its own (or as a loose file). */
function copyVault(vault: Vault, file = "keyhole.db"): { dir: string; path: string } {
  const dir = tempDir();
  const path = join(dir, file);
  copyFileSync(vault.path, path);
  return { dir, path };
}

function hex(id: Uint8Array): string {
  return Buffer.from(id).toString("hex");
}

function rejectsWith(code: string, message: RegExp) {
  return (error: unknown) => {
    assert.ok(isKeyholeError(error), `a KeyholeError, not ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

describe("keyhole migrate: what needs no PostgreSQL", () => {
  it("the default server never loads the postgres driver", () => {
    // Any import of `postgres` fails in the child: the package's entry point must load without
    // it, and the PostgreSQL store must not (the check checks itself).
    const index = new URL("../index.js", import.meta.url).href;
    const store = new URL("../store/postgres-db.js", import.meta.url).href;
    const run = runWithoutPostgres(
      `const server = await import(${JSON.stringify(index)});
      if (typeof server.migrateSqliteToPostgres !== "function") throw new Error("not exported");
      await import(${JSON.stringify(store)}).then(
        () => { throw new Error("the hook did not fire"); },
        (error) => { if (!String(error).includes("postgres-was-loaded")) throw error; },
      );
      console.log("lazy");`,
      [],
      { cwd: fileURLToPath(new URL("../..", import.meta.url)) },
    );
    assert.equal(run.stdout.trim(), "lazy", run.stderr);
  });

  it("was checked against the latest migrations of both schemas", () => {
    assert.equal(COPIED_SQLITE_VERSION, SQLITE_MIGRATIONS.at(-1)?.version);
    assert.equal(COPIED_POSTGRES_VERSION, POSTGRES_MIGRATIONS.at(-1)?.version);
  });

  it("copies exactly the SQLite tables and columns, less the ones PostgreSQL derives", async () => {
    const path = join(tempDir(), "keyhole.db");
    await openSqliteStore({ path }).close();
    const db = new Database(path, { readonly: true });
    try {
      const tables = db
        .prepare(
          `SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT IN ('schema_migrations') AND name NOT LIKE 'sqlite_%' ORDER BY name`,
        )
        .all() as { name: string }[];
      assert.deepEqual(
        tables.map((t) => t.name),
        TABLES.map((t) => t.name).sort(),
      );
      for (const spec of TABLES) {
        const columns = db.pragma(`table_info(${spec.name})`) as { name: string }[];
        assert.deepEqual(
          columns.map((c) => c.name).sort(),
          [...spec.columns, ...spec.sqliteOnly].sort(),
          spec.name,
        );
      }
    } finally {
      db.close();
    }
  });

  it("refuses what is not a whole Keyhole database of the current schema", async () => {
    const dir = tempDir();
    const to = { url: "postgres://nobody@127.0.0.1:9/none" };
    await assert.rejects(
      migrateSqliteToPostgres({ from: join(dir, "missing.db"), to }),
      rejectsWith("config_error", /does not exist/),
    );
    await assert.rejects(
      migrateSqliteToPostgres({ from: dir, to }),
      rejectsWith("config_error", /no keyhole\.db in/),
    );
    writeFileSync(join(dir, "junk.db"), "not a database at all, not even close".repeat(200));
    await assert.rejects(
      migrateSqliteToPostgres({ from: join(dir, "junk.db"), to }),
      rejectsWith("config_error", /not a (readable SQLite|Keyhole) database/),
    );
    const old = new Database(join(dir, "old.db"));
    old.exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
      applied_at INTEGER NOT NULL) STRICT`);
    for (const migration of SQLITE_MIGRATIONS.slice(0, 2)) {
      old.exec(migration.sql);
      old
        .prepare("INSERT INTO schema_migrations VALUES (?, ?, 0)")
        .run(migration.version, migration.name);
    }
    old.close();
    await assert.rejects(
      migrateSqliteToPostgres({ from: join(dir, "old.db"), to }),
      rejectsWith("config_error", /schema version 2: start this version's server on it once/),
    );
    const empty = join(tempDir(), "keyhole.db");
    await openSqliteStore({ path: empty }).close();
    await assert.rejects(
      migrateSqliteToPostgres({ from: empty, to }),
      rejectsWith("config_error", /holds no vault/),
    );
  });
});

if (url === null) {
  skipWithoutPostgres("keyhole migrate: SQLite to PostgreSQL");
} else {
  describe("keyhole migrate: SQLite to PostgreSQL", () => {
    let vault: Vault;
    before(async () => {
      vault = await buildVault();
      dropOwnerSig(vault.path, "unused");
    });

    it("copies every row: each Store read through PostgreSQL equals SQLite's", async () => {
      const { schema, drop } = await freshSchema();
      // The data directory's deny list, holding exactly the retired ids: not a refusal.
      writeFileSync(
        join(vault.dir, "revoked-tokens"),
        vault.retired.map((id) => `${hex(id)}\n`).join(""),
        { mode: 0o600 },
      );
      const lockFile = join(vault.dir, "server.lock");
      const batches: string[] = [];
      let summary: MigrateSummary;
      try {
        summary = await migrateSqliteToPostgres({
          from: vault.dir,
          to: { url, schema },
          beforeBatch: (table) => {
            // The data directory stays locked while the copy runs: a server cannot start.
            assert.equal(readFileSync(lockFile, "utf8"), `${process.pid}\n`);
            batches.push(table);
          },
        });
      } catch (error) {
        await drop();
        throw error;
      }
      assert.throws(() => readFileSync(lockFile), "the lock is released");
      const sqlite = openSqliteStore({ path: vault.path });
      const pg = await openPostgresStore({ url, schema, maxConnections: 2 });
      try {
        const entries = await allAudit(sqlite);
        const rows = Object.fromEntries(summary.rows.map((r) => [r.table, r.rows]));
        assert.deepEqual(rows, sqliteCounts(vault.path));
        assert.deepEqual([rows.agents, rows.agent_tokens, rows.retired_tokens], [5, 4, 3]);
        assert.deepEqual([rows.secrets, rows.secret_versions, rows.audit], [3, 5, entries.length]);
        assert.equal(batches.filter((t) => t === "audit").length, 2, "the log came in pages");
        assert.equal(summary.auditSize, entries.length);
        assert.ok(entries.length > 1_900);
        assert.deepEqual(summary.auditHead, entries.at(-1)?.hash);
        assert.deepEqual(summary.pepperKids, ["kid-1"]);
        assert.equal(summary.lastUsedDiffers, 0);
        assert.equal(summary.dataDir, vault.dir);
        assert.deepEqual(await pg.getVault(), await sqlite.getVault());
        const agents = await sqlite.listAgents(NOW);
        assert.deepEqual(await pg.listAgents(NOW), agents);
        assert.ok(agents.every((a) => a.name === "rot" || a.name === "temp" || a.lastUsedAt));
        assert.deepEqual(await pg.listSecrets(NOW), await sqlite.listSecrets(NOW));
        assert.deepEqual(await pg.listGrants(), await sqlite.listGrants());
        for (const secret of await sqlite.listSecrets(NOW)) {
          for (const { version } of (await sqlite.listSecretVersions(secret.name)) ?? []) {
            const stored = await sqlite.getSecretVersion(secret.id, version);
            assert.ok(stored);
            assert.deepEqual(await pg.getSecretVersion(secret.id, version), stored);
          }
        }
        assert.deepEqual(await pg.listRetiredTokenIds(), vault.retired);
        assert.deepEqual(await sqlite.listRetiredTokenIds(), vault.retired);
        assert.deepEqual(await allAudit(pg), entries);
        assert.deepEqual(await pg.auditHead(), await sqlite.auditHead());

        // The agent still fetches through PostgreSQL, and its entry chains onto the copy.
        const read = await pg.getSecretForAgent(
          vault.ci.principal,
          "db-password",
          NOW,
          request({ ts: NOW, actorType: "agent", actorId: vault.ci.agent.id }),
        );
        assert.deepEqual(read?.value, vault.dbPasswordV3);
        const after = await allAudit(pg);
        assert.equal(after.length, entries.length + 1);
        assert.equal(after.at(-1)?.seq, entries.length + 1);
        const chain = verifyAuditChain(after.map(auditEntryView));
        assert.equal(chain.ok, true);
        assert.deepEqual((await pg.auditHead()).size, entries.length + 1);
        const ci = (await pg.listAgents(NOW)).find((a) => a.name === "ci");
        assert.equal(ci?.lastUsedAt, NOW);
      } finally {
        await sqlite.close();
        await pg.close();
        rmSync(join(vault.dir, "revoked-tokens"));
        await drop();
      }
    });

    it("refuses a target in use: a vault row, or a completed migration", async () => {
      const { schema, drop } = await freshSchema();
      try {
        const server = await openPostgresStore({ url, schema, maxConnections: 1 });
        await server.ensureVault(newId("vault"), T0);
        await server.close();
        await assert.rejects(
          migrateSqliteToPostgres({ from: vault.path, to: { url, schema } }),
          rejectsWith("conflict", /not empty \(rows in vault\).*nothing was written/),
        );
        assert.deepEqual(await rowCounts(schema), {
          vault: 1,
          agents: 0,
          agent_tokens: 0,
          retired_tokens: 0,
          secrets: 0,
          secret_versions: 0,
          grants: 0,
          audit: 0,
        });
      } finally {
        await drop();
      }
      const second = await freshSchema();
      // From a loose copy whose agent lost its last_used_at: PostgreSQL derives it from the log,
      // and the summary says how many agents it will report differently.
      const copy = copyVault(vault, "backup.db");
      const raw = new Database(copy.path);
      raw.prepare("UPDATE agents SET last_used_at = NULL WHERE name = 'ci'").run();
      raw.close();
      try {
        const first = await migrateSqliteToPostgres({
          from: copy.path,
          to: { url, schema: second.schema },
        });
        assert.equal(first.lastUsedDiffers, 1);
        assert.equal(first.dataDir, null);
        await assert.rejects(
          migrateSqliteToPostgres({ from: vault.path, to: { url, schema: second.schema } }),
          rejectsWith("conflict", /not empty/),
        );
        assert.equal((await rowCounts(second.schema)).audit, first.auditSize);
      } finally {
        await second.drop();
      }
    });

    it("refuses a tampered source chain, naming the first bad entry, before touching PostgreSQL", async () => {
      const copy = copyVault(vault);
      const raw = new Database(copy.path);
      raw.exec("DROP TRIGGER audit_no_update");
      raw.prepare("UPDATE audit SET hash = ? WHERE seq = 1234").run(randomBytes(32));
      raw.close();
      const { schema, drop } = await freshSchema();
      try {
        await assert.rejects(
          migrateSqliteToPostgres({ from: copy.dir, to: { url, schema } }),
          rejectsWith("config_error", /does not verify: entry 1234 \(hash mismatch\)/),
        );
        assert.deepEqual(await rowCounts(schema), {}, "not even the migrations ran");
      } finally {
        await drop();
      }
    });

    it("rolls everything back when it fails in the middle: the target stays empty", async () => {
      const { schema, drop } = await freshSchema();
      try {
        let auditBatches = 0;
        await assert.rejects(
          migrateSqliteToPostgres({
            from: vault.path,
            to: { url, schema },
            beforeBatch: (table) => {
              if (table === "audit" && ++auditBatches === 2) throw new Error("injected failure");
            },
          }),
          /injected failure/,
        );
        assert.equal(auditBatches, 2, "the first 1,000 entries were inserted, then it failed");
        await assertUntouched(schema);
        // Nothing was left behind: the same target takes the migration afterwards.
        const done = await migrateSqliteToPostgres({ from: vault.path, to: { url, schema } });
        assert.equal(await auditHeadSeq(schema), done.auditSize);
      } finally {
        await drop();
      }
    });

    it("a row PostgreSQL refuses rolls it all back, with the SQLSTATE and never the row", async () => {
      // A loose file (a backup copy): no data directory, no lock.
      const copy = copyVault(vault, "backup.db");
      const raw = new Database(copy.path);
      raw.pragma("foreign_keys = OFF");
      const grant = raw.prepare("SELECT * FROM grants LIMIT 1").get() as Record<string, unknown>;
      raw
        .prepare(
          `INSERT INTO grants (agent_id, secret_id, version, wrap, issued_at, not_after,
             allowed_hosts, sig, created_at, max_uses, uses)
           VALUES ('agt_ghost_row_value', @secret_id, @version, @wrap, @issued_at, @not_after,
             @allowed_hosts, @sig, @created_at, 0, 0)`,
        )
        .run(grant);
      raw.close();
      const { schema, drop } = await freshSchema();
      try {
        await assert.rejects(
          migrateSqliteToPostgres({ from: copy.path, to: { url, schema } }),
          (error: unknown) => {
            rejectsWith("conflict", /refused a row of grants \(SQLSTATE 23503/)(error);
            assert.doesNotMatch((error as Error).message, /ghost/);
            return true;
          },
        );
        await assertUntouched(schema);
      } finally {
        await drop();
      }
    });

    it("a vault with no audit entry yet (never initialised) keeps the genesis head", async () => {
      const dir = tempDir();
      const store = openSqliteStore({ path: join(dir, "keyhole.db") });
      const created = await store.ensureVault(newId("vault"), T0);
      await store.close();
      const { schema, drop } = await freshSchema();
      try {
        const summary = await migrateSqliteToPostgres({ from: dir, to: { url, schema } });
        assert.equal(summary.auditSize, 0);
        assert.deepEqual(summary.auditHead, new Uint8Array(32));
        const pg = await openPostgresStore({ url, schema, maxConnections: 1 });
        try {
          assert.deepEqual(await pg.getVault(), created);
          assert.deepEqual(await pg.auditHead(), { size: 0, head: new Uint8Array(32) });
          const first = await pg.initVault(bytes(32), bytes(32), request());
          assert.equal(first?.vaultId, created.vaultId);
          assert.equal((await pg.auditHead()).size, 1);
        } finally {
          await pg.close();
        }
      } finally {
        await drop();
      }
    });

    it("a refusal in one page, with the next already sent, rolls back cleanly", async () => {
      // Text with a NUL: SQLite stores it (and its chain verifies), PostgreSQL's text cannot.
      const dir = tempDir();
      const store = openSqliteStore({ path: join(dir, "keyhole.db") });
      await store.ensureVault(newId("vault"), T0);
      for (let round = 0; round < 3; round++) {
        const appends: Promise<unknown>[] = [];
        for (let i = 0; i < 800; i++) {
          const userAgent = round === 0 && i === 10 ? "agent\u0000nul" : "contract";
          const entry = { action: "secret.list", result: "ok", agentId: "", secretId: "" };
          const draft = { ...request({ userAgent }), ...entry, secretVersion: 0, detail: "" };
          appends.push(store.appendAudit(draft));
        }
        await Promise.all(appends);
      }
      await store.close();
      const { schema, drop } = await freshSchema();
      let auditBatches = 0;
      try {
        await assert.rejects(
          migrateSqliteToPostgres({
            from: dir,
            to: { url, schema },
            beforeBatch: (table) => {
              if (table === "audit") auditBatches += 1;
            },
          }),
          rejectsWith("conflict", /refused a row of audit \(SQLSTATE 22\w{3}: a value PostgreSQL/),
        );
        assert.equal(auditBatches, 2, "the second page was sent before the first failed");
        await assertUntouched(schema);
      } finally {
        await drop();
      }
    });

    it("the read-back catches a target that does not keep what it was sent", async () => {
      const sql = admin as postgres.Sql;
      for (const [table, change, message] of [
        ["grants", "NEW.uses := NEW.uses + 1", /copy of grants did not check out/],
        ["audit", "NEW.detail := NEW.detail || '!'", /chain read back breaks at entry 1\b/],
      ] as const) {
        const { schema, drop } = await freshSchema();
        try {
          await (await openPostgresStore({ url, schema, maxConnections: 1 })).close();
          await sql.unsafe(`
            CREATE FUNCTION ${schema}.skew() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN ${change}; RETURN NEW; END $$;
            CREATE TRIGGER skew BEFORE INSERT ON ${schema}.${table}
              FOR EACH ROW EXECUTE FUNCTION ${schema}.skew();`);
          await assert.rejects(
            migrateSqliteToPostgres({ from: vault.path, to: { url, schema } }),
            rejectsWith("internal", message),
          );
          await assertUntouched(schema);
        } finally {
          await drop();
        }
      }
    });

    it("refuses while a server holds the data directory, and leaves its lock alone", async () => {
      const copy = copyVault(vault);
      const lock = join(copy.dir, "server.lock");
      // Another live process: the test runner that started this one.
      writeFileSync(lock, `${process.ppid}\n`, { mode: 0o600 });
      // Named by its directory, or by its keyhole.db beside the pepper every server makes.
      writeFileSync(join(copy.dir, "pepper"), randomBytes(32), { mode: 0o600 });
      for (const from of [copy.dir, copy.path]) {
        await assert.rejects(
          migrateSqliteToPostgres({ from, to: { url, schema: "no_such_schema" } }),
          rejectsWith("config_error", new RegExp(`stop the server first \\(pid ${process.ppid} `)),
        );
      }
      assert.equal(readFileSync(lock, "utf8"), `${process.ppid}\n`);
    });

    it("records the data directory's pepper and audit key for the PostgreSQL servers", async () => {
      const copy = copyVault(vault);
      const pepper = randomBytes(32);
      const auditSeed = randomBytes(32);
      writeFileSync(join(copy.dir, "pepper"), pepper, { mode: 0o600 });
      writeFileSync(join(copy.dir, "audit-key"), auditSeed, { mode: 0o600 });
      const { schema, drop } = await freshSchema();
      const sql = admin as NonNullable<typeof admin>;
      try {
        // The vault's tokens carry another pepper's id: refused before PostgreSQL is touched.
        await assert.rejects(
          migrateSqliteToPostgres({ from: copy.dir, to: { url, schema } }),
          rejectsWith("config_error", /made with another pepper than .*pepper.*nothing was copied/),
        );
        const [{ n } = { n: -1 }] =
          await sql`SELECT count(*)::int AS n FROM information_schema.tables
          WHERE table_schema = ${schema}`;
        assert.equal(n, 0, "not even migrated");
        // As a server that made them would have: the tokens carry the directory's pepper id.
        const db = new Database(copy.path);
        db.prepare("UPDATE agent_tokens SET pepper_kid = ?").run(pepperKid(pepper));
        db.close();
        await migrateSqliteToPostgres({ from: copy.dir, to: { url, schema } });
        const [keys] = await sql`SELECT pepper_kid, audit_public_key
          FROM ${sql(schema)}.shared_keys`;
        assert.equal(keys?.pepper_kid, pepperKid(pepper));
        assert.deepEqual(
          new Uint8Array(keys?.audit_public_key),
          auditKeyFromSeed(auditSeed).publicKey,
        );
      } finally {
        await drop();
      }
    });

    it("refuses a data directory with one key file and not the other", async () => {
      const copy = copyVault(vault);
      writeFileSync(join(copy.dir, "audit-key"), randomBytes(32), { mode: 0o600 });
      await assert.rejects(
        migrateSqliteToPostgres({ from: copy.dir, to: { url, schema: "no_such_schema" } }),
        rejectsWith("config_error", /has an audit-key but no pepper/),
      );
    });

    it("refuses a vault whose revoked-tokens list names a token live in the database", async () => {
      const copy = copyVault(vault);
      const listed = [...vault.retired, vault.ci.token.tokenId].map((id) => `${hex(id)}\n`);
      writeFileSync(join(copy.dir, "revoked-tokens"), listed.join(""), { mode: 0o600 });
      await assert.rejects(
        migrateSqliteToPostgres({ from: copy.dir, to: { url, schema: "no_such_schema" } }),
        rejectsWith("config_error", /lists 1 token\(s\) still live in the database \(agents: ci\)/),
      );
    });

    it("names a missing target schema, never the connection string", async () => {
      const secret = `pw-${randomBytes(6).toString("hex")}`;
      const target = new URL(url);
      await assert.rejects(
        migrateSqliteToPostgres({ from: vault.path, to: { url, schema: "no_such_schema" } }),
        rejectsWith("config_error", /target schema does not exist/),
      );
      target.password = secret;
      await assert.rejects(
        migrateSqliteToPostgres({ from: vault.path, to: { url: target.href } }),
        (error: unknown) => {
          rejectsWith("config_error", /refused the login \(SQLSTATE 28P01\)/)(error);
          assert.doesNotMatch(String((error as Error).message), new RegExp(secret));
          return true;
        },
      );
    });

    it("PostgreSQL's tables and columns are the copied ones plus the ones it fills itself", async () => {
      const { schema, drop } = await freshSchema();
      try {
        await (await openPostgresStore({ url, schema, maxConnections: 1 })).close();
        const sql = admin as postgres.Sql;
        const rows = await sql<{ table_name: string; column_name: string }[]>`
          SELECT table_name, column_name FROM information_schema.columns
          WHERE table_schema = ${schema}`;
        const tables = new Set(rows.map((r) => r.table_name));
        assert.deepEqual(
          [...tables].sort(),
          [...TABLES.map((t) => t.name), ...Object.keys(POSTGRES_TABLES_NOT_COPIED)].sort(),
        );
        for (const spec of TABLES) {
          assert.deepEqual(
            rows
              .filter((r) => r.table_name === spec.name)
              .map((r) => r.column_name)
              .sort(),
            [...spec.columns, ...spec.postgresOnly].sort(),
            spec.name,
          );
        }
      } finally {
        await drop();
      }
    });
  });
}
