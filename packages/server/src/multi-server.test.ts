// Three stateless servers on one PostgreSQL database (issue 6): each with its own data directory,
// all with the same pepper and audit key. What one server commits, the others act on in their
// very next answer: no sleep, no cache to wait out.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AuditEntryView, type CheckpointView, isKeyholeError } from "@keyhole/core";
import { verifyAgainstCheckpoint, verifyAuditChain, verifyCheckpoint } from "./audit/verify.js";
import { startServer } from "./server.js";
import { startTestServer, TestClock, type TestServer } from "./test-support/harness.js";
import { call, errorCode, type HttpResult } from "./test-support/http.js";
import { agentGet, canary, fetchAndOpen, TestOwner } from "./test-support/owner.js";
import {
  pgTestUrl,
  type SharedTestDatabase,
  sharedTestDatabase,
  skipWithoutPostgres,
} from "./test-support/postgres.js";

const url = pgTestUrl();

interface VaultInfo {
  vault_id: string;
  initialized: boolean;
  owner_sign_pk: string | null;
}

async function info(server: TestServer): Promise<VaultInfo> {
  const res = await call(server.url, { method: "GET", path: "/v1/info" });
  assert.equal(res.status, 200, res.text);
  return res.json as VaultInfo;
}

/** Runs `tasks` with at most `limit` of them in flight. */
async function bounded<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await (tasks[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

if (url === null) {
  skipWithoutPostgres("three servers on one PostgreSQL database");
} else {
  describe("three servers on one PostgreSQL database", () => {
    let db: SharedTestDatabase | undefined;
    const servers: TestServer[] = [];
    // One clock for all: owner requests signed by it pass every server's time checks.
    const clock = new TestClock();
    let before1: VaultInfo[] = [];
    let owner: TestOwner;
    /** The owner as each server sees it (the same keys, a different URL). */
    let owners: TestOwner[] = [];

    before(async () => {
      const database = await sharedTestDatabase(url);
      db = database;
      // Started together: the first to migrate and create the vault record wins, the others
      // wait on its advisory lock and keep its vault id.
      const started = await Promise.allSettled(
        [1, 2, 3].map(() => startTestServer({ database, clock, logLevel: "error" })),
      );
      for (const s of started) if (s.status === "fulfilled") servers.push(s.value);
      const failed = started.find((s) => s.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
      before1 = await Promise.all(servers.map(info));
      owner = await TestOwner.initialized(servers[0] as TestServer);
      owners = servers.map((s) => owner.at(s.url));
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.close()));
      await db?.drop();
    });

    const s = (i: number) => servers[i] as TestServer;
    const o = (i: number) => owners[i] as TestOwner;

    it("the vault initialised through one server is initialised on the others", async () => {
      const vaultId = before1[0]?.vault_id;
      assert.ok(vaultId, "a vault id");
      assert.deepEqual(
        before1.map((v) => [v.vault_id, v.initialized]),
        [
          [vaultId, false],
          [vaultId, false],
          [vaultId, false],
        ],
        "one vault record, seen uninitialised by all three",
      );
      for (const server of servers) assert.equal(server.server.vaultId, vaultId);
      const after1 = await Promise.all(servers.map(info));
      const ownerPk = after1[0]?.owner_sign_pk;
      assert.ok(ownerPk);
      for (const v of after1) assert.deepEqual([v.initialized, v.owner_sign_pk], [true, ownerPk]);
      // Owner requests are accepted by the servers that did not see the init.
      for (const i of [1, 2]) {
        assert.equal((await o(i).request("GET", "/v1/owner/secrets")).status, 200);
      }
      // A second init through another server (with that server's own bootstrap code) is refused.
      const late = await TestOwner.create(s(1).url, clock.now);
      const res = await late.init(s(1).server.bootstrapCode ?? "");
      assert.equal(res.status, 409, res.text);
      assert.equal(errorCode(res), "already_initialized");
    });

    it("a secret written through server 1 is read through servers 2 and 3 at once", async () => {
      const first = canary();
      await o(0).putSecret("shared", first);
      const agent = await o(0).createAgent("reader", ["shared"]);
      const reads = await Promise.all([1, 2].map((i) => fetchAndOpen(s(i).url, agent, "shared")));
      for (const { res, value } of reads) {
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(value, first);
      }
      // A new version through server 1: the very next reads elsewhere get it, never the old one.
      const second = canary();
      const written = await o(0).putSecret("shared", second);
      assert.equal(written.version, 2);
      const again = await Promise.all([1, 2].map((i) => fetchAndOpen(s(i).url, agent, "shared")));
      for (const { res, value } of again) {
        assert.equal(res.status, 200, res.text);
        assert.equal((res.json as { version: number }).version, 2);
        assert.deepEqual(value, second);
      }
    });

    it("a revoke through server 1 is refused by servers 2 and 3 on the next request", async () => {
      await o(0).putSecret("doomed-secret", canary());
      const agent = await o(0).createAgent("doomed", ["doomed-secret"]);
      const rotated = await o(0).createAgent("rotated", ["doomed-secret"]);
      // Each server has just authenticated both tokens: any cache of a good answer would be warm.
      for (const i of [1, 2]) {
        for (const a of [agent, rotated]) {
          assert.equal((await agentGet(s(i).url, a, "/v1/agent/self")).status, 200);
          assert.equal((await fetchAndOpen(s(i).url, a, "doomed-secret")).res.status, 200);
        }
      }
      assert.equal((await o(0).request("POST", "/v1/owner/agents/doomed/revoke")).status, 200);
      const { agent: next, res } = await o(0).rotateAgent(rotated, ["doomed-secret"]);
      assert.equal(res.status, 200, res.text);
      const refused = await Promise.all(
        [1, 2].flatMap((i) => [
          agentGet(s(i).url, agent, "/v1/agent/self"),
          agentGet(s(i).url, agent, "/v1/agent/secrets/doomed-secret"),
          agentGet(s(i).url, rotated, "/v1/agent/secrets/doomed-secret"),
        ]),
      );
      for (const r of refused) {
        assert.equal(r.status, 401, r.text);
        assert.equal(errorCode(r), "unauthenticated");
      }
      // The rotated agent's new token works everywhere at once.
      for (const i of [1, 2]) {
        const { res: fetched, value } = await fetchAndOpen(s(i).url, next, "doomed-secret");
        assert.equal(fetched.status, 200, fetched.text);
        assert.ok(value);
      }
    });

    it("a server with a new data directory joins the running vault, revocations included", async () => {
      await o(0).putSecret("join-secret", canary());
      const gone = await o(0).createAgent("gone-before-join", ["join-secret"]);
      assert.equal(
        (await o(0).request("POST", "/v1/owner/agents/gone-before-join/revoke")).status,
        200,
      );
      const live = await o(0).createAgent("live-at-join", ["join-secret"]);
      const fourth = await startTestServer({ database: db as SharedTestDatabase, clock });
      try {
        assert.deepEqual(await info(fourth), await info(s(0)));
        assert.equal((await fetchAndOpen(fourth.url, live, "join-secret")).res.status, 200);
        const refused = await agentGet(fourth.url, gone, "/v1/agent/secrets/join-secret");
        assert.equal(refused.status, 401, refused.text);
      } finally {
        await fourth.close();
      }
    });

    it("an owner request used on one server is refused as a replay by the others", async () => {
      const target = "/v1/owner/agents";
      const authorization = await owner.authorization("GET", target, undefined);
      const captured = { method: "GET", path: target, headers: { authorization } };
      assert.equal((await call(s(0).url, captured)).status, 200);
      for (const i of [1, 2]) {
        const replayed = await call(s(i).url, captured);
        assert.equal(replayed.status, 401, replayed.text);
        assert.equal(errorCode(replayed), "unauthenticated");
      }
    });

    it("under load from all three servers the audit log stays one gap-free chain", async () => {
      await o(0).putSecret("hot", canary());
      const agent = await o(0).createAgent("loader", ["hot"]);
      const fetchesPerServer = 100;
      const fetchRequestIds = new Set<string>();
      const load = servers.map((server) =>
        bounded(
          Array.from({ length: fetchesPerServer }, () => async () => {
            const { res, value } = await fetchAndOpen(server.url, agent, "hot");
            assert.equal(res.status, 200, res.text);
            assert.ok(value);
            fetchRequestIds.add(String(res.headers["x-request-id"]));
          }),
          10,
        ),
      );
      // Owner writes through every server while the fetches run, each to its own secret (writes
      // to one secret through two servers would race on its version, as they should).
      const writes = servers.map(async (_, i) => {
        for (let n = 0; n < 3; n++) await o(i).putSecret(`w-${i}`, canary());
      });
      await Promise.all([...load, ...writes]);
      assert.equal(fetchRequestIds.size, 3 * fetchesPerServer);

      // Checkpoints first (more entries may follow: throttled auth.failed counts are flushed on
      // a timer), then the whole log through each server.
      const checkpoints = await Promise.all(
        owners.map(async (ow) => {
          const res: HttpResult = await ow.request("GET", "/v1/owner/audit/checkpoint");
          assert.equal(res.status, 200, res.text);
          return res.json as CheckpointView;
        }),
      );
      const logs: AuditEntryView[][] = [];
      for (const ow of owners) logs.push(await ow.auditEntries());
      const auditPk = checkpoints[0]?.audit_pk ?? "";
      for (const [i, checkpoint] of checkpoints.entries()) {
        assert.equal(checkpoint.audit_pk, auditPk, "one audit key on every server");
        assert.ok(
          verifyCheckpoint(checkpoint, Buffer.from(auditPk, "base64url")),
          `server ${i + 1}'s checkpoint is signed`,
        );
        assert.deepEqual(verifyAgainstCheckpoint(logs[i] ?? [], checkpoint).ok, true);
      }
      for (const log of logs) {
        const chain = verifyAuditChain(log);
        assert.ok(chain.ok, `the chain verifies: ${JSON.stringify(chain)}`);
        assert.equal(chain.size, log.length);
        assert.deepEqual(
          log.map((e) => e.seq),
          Array.from({ length: log.length }, (_, i) => i + 1),
          "seq runs from 1 without a gap",
        );
      }
      // Each server lists the same log, up to what was appended between the reads.
      const shortest = Math.min(...logs.map((l) => l.length));
      for (const log of logs.slice(1)) {
        assert.deepEqual(log.slice(0, shortest), logs[0]?.slice(0, shortest));
      }
      const reads = (logs[2] ?? []).filter(
        (e) => e.action === "secret.read" && e.agent_id === agent.id && e.result === "ok",
      );
      assert.equal(reads.length, 3 * fetchesPerServer, "one entry per fetch");
      assert.deepEqual(new Set(reads.map((e) => e.request_id)), fetchRequestIds);
      const writesLogged = (logs[2] ?? []).filter(
        (e) => e.action === "secret.write" && e.result === "ok" && e.actor_type === "owner",
      );
      assert.ok(writesLogged.length >= 9, "the interleaved owner writes are in the log too");
    });
  });

  describe("failed-authentication limits on a shared database", () => {
    let db: SharedTestDatabase | undefined;
    const servers: TestServer[] = [];
    // Three failures in a minute are allowed, the fourth blocks: counted across both servers.
    const limits = {
      maxFailures: 3,
      windowMs: 60_000,
      baseBlockMs: 60_000,
      maxBlockMs: 600_000,
      quietMs: 600_000,
      maxKeys: 100,
    };
    before(async () => {
      db = await sharedTestDatabase(url);
      for (let i = 0; i < 2; i++) {
        servers.push(await startTestServer({ database: db, limits, logLevel: "error" }));
      }
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.close()));
      await db?.drop();
    });

    it("hold across servers: failures split between two servers block the source on both", async () => {
      // A well-formed agent header whose token id no agent has.
      const bogus = `Keyhole ${"A".repeat(22)}.${"B".repeat(43)}`;
      const attempt = (server: TestServer) =>
        call(server.url, {
          method: "GET",
          path: "/v1/agent/self",
          headers: { authorization: bogus },
        });
      const answers: number[] = [];
      for (const server of [servers[0], servers[1], servers[0], servers[1], servers[0]]) {
        answers.push((await attempt(server as TestServer)).status);
      }
      // Alone, each server would have seen at most three failures and answered 401 throughout.
      assert.deepEqual(answers, [401, 401, 401, 429, 429]);
    });
  });

  describe("starting on a shared database that cannot be used", () => {
    let db: SharedTestDatabase | undefined;
    const root = mkdtempSync(join(tmpdir(), "keyhole-pg-start-"));
    after(async () => {
      await db?.drop();
      rmSync(root, { recursive: true, force: true });
    });

    it("a server with another pepper or audit key than the first one's is refused", async () => {
      const database = await sharedTestDatabase(url);
      const other = (name: string) => {
        const path = join(root, name);
        writeFileSync(path, randomBytes(32), { mode: 0o600 });
        return path;
      };
      const start = (n: number, pepperFile: string, auditKeyFile: string) =>
        startServer({
          dataDir: join(root, `keys-${n}`),
          port: 0,
          log: () => {},
          databaseUrl: url,
          databaseSchema: database.schema,
          pepperFile,
          auditKeyFile,
        });
      try {
        const first = await start(0, database.pepperFile, database.auditKeyFile);
        await first.close();
        const cases: [string, string, RegExp][] = [
          [other("pepper-2"), database.auditKeyFile, /^--pepper-file is not the one/],
          [database.pepperFile, other("audit-2"), /^--audit-key-file is not the one/],
          [other("pepper-3"), other("audit-3"), /^--pepper-file and --audit-key-file are not/],
        ];
        for (const [n, [pepperFile, auditKeyFile, pattern]] of cases.entries()) {
          const error = await start(n + 1, pepperFile, auditKeyFile).then(
            async (started) => {
              await started.close();
              return assert.fail("started");
            },
            (e: unknown) => e,
          );
          assert.ok(isKeyholeError(error) && error.code === "config_error", String(error));
          assert.match(error.message, pattern);
        }
        // The recorded keys are still the first server's: it starts again.
        await (await start(9, database.pepperFile, database.auditKeyFile)).close();
      } finally {
        await database.drop();
      }
    });

    it("is one coded line naming host:port, never the URL or its password", async () => {
      const database = await sharedTestDatabase(url);
      db = database;
      const real = new URL(url);
      const endpoint = `${real.hostname}:${real.port}`;
      const withPassword = (password: string) => {
        const u = new URL(url);
        u.password = password;
        return u.toString();
      };
      const withPath = (path: string) => {
        const u = new URL(url);
        u.pathname = path;
        return u.toString();
      };
      const cases: [string, string | undefined, string, RegExp][] = [
        [withPassword("not-the-password"), database.schema, "config_error", /refused the user/],
        [url, "no_such_schema", "config_error", /schema does not exist .*create it first/],
        [withPath("/no_such_database"), undefined, "config_error", /database named in the URL/],
      ];
      for (const [n, [databaseUrl, schema, code, pattern]] of cases.entries()) {
        const logs: string[] = [];
        const error = await startServer({
          dataDir: join(root, `data-${n}`),
          port: 0,
          log: (line) => logs.push(line),
          databaseUrl,
          ...(schema === undefined ? {} : { databaseSchema: schema }),
          pepperFile: database.pepperFile,
          auditKeyFile: database.auditKeyFile,
        }).then(
          async (started) => {
            await started.close();
            return assert.fail("started");
          },
          (e: unknown) => e,
        );
        assert.ok(isKeyholeError(error), String(error));
        assert.equal(error.code, code, error.message);
        assert.match(error.message, pattern);
        assert.ok(error.message.includes(endpoint), error.message);
        assert.ok(!error.message.includes("\n"), "one line");
        const said = [error.message, ...logs].join("\n");
        for (const secret of [real.password, "not-the-password", "postgres://"]) {
          assert.ok(
            !said.includes(secret),
            `never ${secret === real.password ? "the password" : secret}`,
          );
        }
      }
    });
  });
}
