// The database restarting under load (issue 6): two servers on one PostgreSQL of their own,
// stopped for a while ("fast": clients are disconnected cleanly; "immediate": every process
// killed, crash recovery on start) and started again while agents fetch and the owner writes.
// While it is down every answer is a coded 503 and /readyz says not ready; once it is back both
// servers serve again by themselves; every write answered 2xx is there afterwards, every write
// answered "nothing changed" is not, and the audit log is one chain that verifies.
//
// The test runs its own PostgreSQL (scripts/pg-server.mjs): the shared test server must not go
// down under the other test files.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type AuditEntryView,
  type CheckpointView,
  encodeBase64url,
  newId,
  ownerRecipientId,
  type SecretView,
  sealValue,
  wrapDek,
} from "@keyhole/core";
import { verifyAgainstCheckpoint, verifyAuditChain, verifyCheckpoint } from "./audit/verify.js";
import { startTestServer, TestClock, type TestServer } from "./test-support/harness.js";
import { call, errorCode, type HttpResult } from "./test-support/http.js";
import { canary, fetchAndOpen, type TestAgent, TestOwner } from "./test-support/owner.js";
import { type SharedTestDatabase, sharedTestDatabase } from "./test-support/postgres.js";

/** What the test uses of scripts/pg-server.mjs. */
interface PgServer {
  readonly url: string;
  pause(mode: "fast" | "immediate"): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/** How long the database stays down. */
const DOWN_MS = 1_500;
/** Load before the database goes down. */
const WARM_MS = 1_000;
/** Load after both servers have recovered. */
const SETTLE_MS = 1_000;
/** No answer may take longer than this, down or up (the bound on "never hangs"). */
const ANSWER_BOUND_MS = 3_000;
/**
 * Once the database has been down this long, the servers know it: they refuse at once, within
 * `FAIL_FAST_MS`, rather than each request waiting for a connection attempt of its own.
 */
const KNOWN_DOWN_MS = 500;
const FAIL_FAST_MS = 500;
/** Both servers serve again within this long of the database accepting connections. */
const RECOVERY_BOUND_MS = 3_000;
/** A request still unanswered after this is reported as hung rather than waited for. */
const HUNG_MS = 15_000;
/** Pause between one worker's requests: a bounded load, a few hundred fetches a round. */
const PACE_MS = 15;

/** One answered (or hung) request. */
interface Outcome {
  readonly server: number;
  readonly kind: "fetch" | "put" | "read" | "readyz";
  readonly start: number;
  readonly end: number;
  readonly status: number;
  readonly code: string | undefined;
  readonly message?: string | undefined;
  /** Whether a 503 said "retry after": the change was not made. */
  readonly retryAfter: boolean;
  readonly requestId: string;
  /** For an acknowledged put: the secret and version written. */
  readonly wrote?: { readonly name: string; readonly version: number };
}

const pgServerModule = new URL("../../../scripts/pg-server.mjs", import.meta.url).href;

/** Our own PostgreSQL, or why there is none (outside CI only, as `pgTestUrl`). */
async function ownPostgres(): Promise<PgServer | string> {
  const { startPostgres } = (await import(pgServerModule)) as {
    startPostgres: () => Promise<PgServer>;
  };
  try {
    return await startPostgres();
  } catch (error) {
    if (process.env.CI === "true" || (error as Error | null)?.name !== "PgServerError") throw error;
    return (error as Error).message;
  }
}

const pg = await ownPostgres();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `request`, timed; a request unanswered after `HUNG_MS` is recorded as status 0. */
async function timed(
  server: number,
  kind: Outcome["kind"],
  request: () => Promise<HttpResult>,
): Promise<{ outcome: Outcome; res: HttpResult | null }> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), HUNG_MS);
  });
  const res = await Promise.race([request(), hung]).finally(() => clearTimeout(timer));
  const outcome: Outcome = {
    server,
    kind,
    start,
    end: performance.now(),
    status: res?.status ?? 0,
    code: res === null ? "hung" : errorCode(res),
    message: (res?.json as { error?: { message?: string } } | null)?.error?.message,
    retryAfter: res?.headers["retry-after"] !== undefined,
    requestId: String(res?.headers["x-request-id"] ?? ""),
  };
  return { outcome, res };
}

/**
 * A `SecretPut` of version `known.version + 1` of an owner-only secret: built from what the
 * writer knows rather than from a fresh read, which could fail while the database is down.
 */
async function putBody(
  owner: TestOwner,
  name: string,
  known: { id: string; version: number },
): Promise<Record<string, unknown>> {
  const version = known.version + 1;
  const ref = { vaultId: owner.vaultId, secretId: known.id, version };
  const sealed = await sealValue(ref, canary());
  const ownerWrap = await wrapDek(ref, sealed.dekId, sealed.dek, {
    recipientId: ownerRecipientId(owner.vaultId),
    publicKey: owner.enc.publicKey,
  });
  const ownerSig = await owner.ownerSig(
    { id: known.id, name, version, value: sealed.envelope, dekId: sealed.dekId },
    ownerWrap,
  );
  return {
    id: known.id,
    expected_version: known.version,
    version,
    value: encodeBase64url(sealed.envelope),
    owner_wrap: encodeBase64url(ownerWrap),
    owner_sig: encodeBase64url(ownerSig),
    grants: [],
  };
}

if (typeof pg === "string") {
  describe("the database restarting under load", () => {
    it("needs PostgreSQL 15 binaries to run a server of its own", (t) => {
      t.skip(`no PostgreSQL here (${pg})`);
    });
  });
} else {
  describe("the database restarting under load", () => {
    let db: SharedTestDatabase | undefined;
    const servers: TestServer[] = [];
    const clock = new TestClock();
    let owners: TestOwner[] = [];
    const agents: TestAgent[] = [];
    let hotValue: Uint8Array;

    before(async () => {
      db = await sharedTestDatabase(pg.url);
      for (let i = 0; i < 2; i++) {
        servers.push(await startTestServer({ database: db, clock, logLevel: "error" }));
      }
      const owner = await TestOwner.initialized(servers[0] as TestServer);
      owners = servers.map((s) => owner.at(s.url));
      hotValue = canary();
      await owner.putSecret("hot", hotValue);
      for (let i = 0; i < 4; i++) agents.push(await owner.createAgent(`agent-${i}`, ["hot"]));
    });
    after(async () => {
      await Promise.all(servers.map((s) => s.close()));
      await db?.drop().catch(() => {});
      await pg.stop();
    });

    for (const mode of ["fast", "immediate"] as const) {
      it(`pg_ctl stop -m ${mode}: 503 while down, recovery, no acknowledged write lost`, async () => {
        const outcomes: Outcome[] = [];
        let running = true;
        const record = (o: Outcome) => {
          outcomes.push(o);
        };

        const fetcher = async (server: number, first: number) => {
          for (let n = first; running; n++) {
            const agent = agents[n % agents.length] as TestAgent;
            let value: Uint8Array | null = null;
            const { outcome } = await timed(server, "fetch", async () => {
              const opened = await fetchAndOpen(servers[server]?.url ?? "", agent, "hot");
              value = opened.value;
              return opened.res;
            });
            record(outcome);
            if (outcome.status === 200) assert.deepEqual(value, hotValue, "the value, intact");
            await sleep(PACE_MS);
          }
        };

        // Each server has one writer, writing its own secret: no write races another on a
        // version. After any 503 it re-reads before writing again ("re-read before retrying").
        const writer = async (server: number) => {
          const owner = owners[server] as TestOwner;
          const name = `w-${mode}-${server}`;
          let known: { id: string; version: number } | null = { id: newId("secret"), version: 0 };
          while (running) {
            if (known === null) {
              const { outcome, res } = await timed(server, "read", () =>
                owner.request("GET", `/v1/owner/secrets/${name}`),
              );
              record(outcome);
              if (res?.status === 200) {
                const view = res.json as SecretView;
                known = { id: view.id, version: view.version };
              } else {
                await sleep(PACE_MS * 4);
              }
              continue;
            }
            const body = await putBody(owner, name, known);
            const target: { id: string; version: number } = known;
            const { outcome } = await timed(server, "put", () =>
              owner.request("PUT", `/v1/owner/secrets/${name}`, body),
            );
            if (outcome.status === 200 || outcome.status === 201) {
              record({ ...outcome, wrote: { name, version: target.version + 1 } });
              known = { id: target.id, version: target.version + 1 };
            } else {
              record(outcome);
              known = null;
            }
            await sleep(PACE_MS * 2);
          }
        };

        const readyPoller = async (server: number) => {
          while (running) {
            const { outcome } = await timed(server, "readyz", () =>
              call(servers[server]?.url ?? "", { method: "GET", path: "/readyz" }),
            );
            record(outcome);
            await sleep(50);
          }
        };

        // Warm pools first, as in steady state: every connection the load needs is open before
        // the database goes down. (A connection being opened at that moment can meet a driver
        // bug, a promise rejected with nobody to handle it: the real server lets it pass,
        // guardDriverRejections, but node:test would fail this file for it.)
        for (let wave = 0; wave < 2; wave++) {
          await Promise.all(
            servers.flatMap((server, i) =>
              Array.from({ length: 12 }, async (_, n) => {
                const agent = agents[(i + n) % agents.length] as TestAgent;
                const { res } = await fetchAndOpen(server.url, agent, "hot");
                assert.equal(res.status, 200, res.text);
              }),
            ),
          );
        }
        const load = [0, 1].flatMap((s) => [
          fetcher(s, 0),
          fetcher(s, 1),
          fetcher(s, 2),
          writer(s),
          readyPoller(s),
        ]);
        const startedAt = performance.now();
        let downAt = 0;
        let upAt = 0;
        let resumingAt = 0;
        const recovered: number[] = [];
        try {
          await sleep(WARM_MS);
          await pg.pause(mode);
          downAt = performance.now();
          await sleep(DOWN_MS);
          resumingAt = performance.now();
          await pg.resume();
          upAt = performance.now();
          // Recovered: a fetch answered 200 and /readyz 200, both asked after the restart.
          for (let server = 0; server < 2; server++) {
            for (;;) {
              const ok = (kind: Outcome["kind"]) =>
                outcomes.some(
                  (o) =>
                    o.server === server && o.kind === kind && o.start > upAt && o.status === 200,
                );
              if (ok("fetch") && ok("readyz")) break;
              assert.ok(
                performance.now() - upAt < RECOVERY_BOUND_MS + HUNG_MS,
                `server ${server} never recovered`,
              );
              await sleep(20);
            }
            recovered.push(performance.now() - upAt);
          }
          await sleep(SETTLE_MS);
        } finally {
          running = false;
          await Promise.all(load);
        }

        const count = (f: (o: Outcome) => boolean) => outcomes.filter(f).length;
        const slowest = (list: Outcome[]) =>
          Math.round(Math.max(0, ...list.map((o) => o.end - o.start)));
        // Asked and answered while the database was down (pg_ctl had seen it stop and not yet
        // been asked to start it).
        const whileDown = outcomes.filter((o) => o.start >= downAt && o.end <= resumingAt);
        const knownDown = whileDown.filter((o) => o.start >= downAt + KNOWN_DOWN_MS);
        const summary = {
          mode,
          seconds: ((performance.now() - startedAt) / 1000).toFixed(1),
          requests: outcomes.length,
          fetched: count((o) => o.kind === "fetch" && o.status === 200),
          written: count((o) => o.wrote !== undefined),
          unavailable: count((o) => o.status === 503),
          unknownOutcome: count((o) => o.kind !== "readyz" && o.status === 503 && !o.retryAfter),
          slowestMs: slowest(outcomes),
          slowestWhileKnownDownMs: slowest(knownDown),
          recoveredMs: recovered.map(Math.round),
        };
        process.stderr.write(`db-restart: ${JSON.stringify(summary)}\n`);
        // Every answer is a success or a coded 503 (never a 500, a hang or another refusal),
        // within the bound.
        for (const o of outcomes) {
          const ok = o.status === 200 || (o.kind === "put" && o.status === 201);
          if (!ok) {
            assert.equal(o.status, 503, `${o.kind} on server ${o.server}: ${JSON.stringify(o)}`);
            assert.ok(
              o.code === "unavailable" || o.code === "storage_unavailable",
              `a coded 503: ${JSON.stringify(o)}`,
            );
          }
          assert.ok(o.end - o.start <= ANSWER_BOUND_MS, `answered in time: ${JSON.stringify(o)}`);
        }
        // While the database was down everything was refused, /readyz included: no 200 for a
        // write that did not happen; and soon refused at once.
        for (const server of [0, 1]) {
          for (const kind of ["fetch", "readyz"] as const) {
            assert.ok(
              whileDown.some((o) => o.server === server && o.kind === kind),
              `server ${server} was asked for ${kind} while the database was down`,
            );
          }
        }
        for (const o of whileDown) assert.equal(o.status, 503, JSON.stringify(o));
        assert.ok(knownDown.length > 0, "requests while the database was known to be down");
        for (const o of knownDown) {
          assert.ok(o.end - o.start <= FAIL_FAST_MS, `refused at once: ${JSON.stringify(o)}`);
        }
        assert.ok(
          recovered.every((ms) => ms <= RECOVERY_BOUND_MS),
          `recovered: ${recovered}`,
        );

        // The audit log, through each server: one chain, gap-free, matching a signed checkpoint.
        const logs: AuditEntryView[][] = [];
        for (const owner of owners) {
          const res = await owner.request("GET", "/v1/owner/audit/checkpoint");
          assert.equal(res.status, 200, res.text);
          const checkpoint = res.json as CheckpointView;
          const log = await owner.auditEntries();
          assert.ok(verifyCheckpoint(checkpoint, Buffer.from(checkpoint.audit_pk, "base64url")));
          assert.equal(verifyAgainstCheckpoint(log, checkpoint).ok, true);
          const chain = verifyAuditChain(log);
          assert.ok(chain.ok, `the chain verifies: ${JSON.stringify(chain)}`);
          assert.deepEqual(
            log.map((e) => e.seq),
            Array.from({ length: log.length }, (_, i) => i + 1),
            "seq runs from 1 without a gap",
          );
          logs.push(log);
        }
        const log = logs[1] ?? [];
        const logged = new Map(log.map((e) => [e.request_id, e]));
        // Every acknowledged operation's entry is there (it was committed with the operation);
        // an operation refused with "retry after" left none. A 503 without it (the outcome of
        // a COMMIT nobody heard back from) may go either way.
        for (const o of outcomes) {
          if (o.kind === "readyz") continue;
          const entry = logged.get(o.requestId);
          if (o.status === 200 || o.status === 201) {
            assert.equal(entry?.result, "ok", `acknowledged, so logged: ${JSON.stringify(o)}`);
          } else if (o.retryAfter) {
            assert.equal(entry, undefined, `refused, so not logged: ${JSON.stringify(o)}`);
          }
        }
        // Every acknowledged version is in its secret's history, which has no gap.
        for (const [server, owner] of owners.entries()) {
          const name = `w-${mode}-${server}`;
          const res = await owner.request("GET", `/v1/owner/secrets/${name}/history`);
          assert.equal(res.status, 200, res.text);
          const versions = (res.json as { versions: { version: number }[] }).versions
            .map((v) => v.version)
            .sort((a, b) => a - b);
          assert.deepEqual(
            versions,
            Array.from({ length: versions.length }, (_, i) => i + 1),
          );
          for (const o of outcomes) {
            if (o.wrote?.name === name) assert.ok(versions.includes(o.wrote.version), name);
          }
        }
        // The servers logged the outage by code, never the database URL or its password.
        const password = new URL(pg.url).password;
        for (const server of servers) {
          assert.ok(
            server.logs.some((line) => /"storage_code":"PG_[A-Z0-9_]+"/.test(line)),
            "the outage is logged with its code",
          );
          for (const line of server.logs) {
            assert.ok(!line.includes(password) && !line.includes("postgres://"), line);
          }
        }
      });
    }
  });
}
