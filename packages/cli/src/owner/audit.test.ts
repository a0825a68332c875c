// `keyhole audit` and `keyhole audit verify` against the fake server: the chain, the signed
// checkpoint and the pin catch editing, removing, reordering, truncating and rewriting.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, beforeEach, test } from "node:test";
import {
  AUDIT_GENESIS,
  auditFieldsFromView,
  chainAuditHash,
  decodeBase64url,
  encodeBase64url,
  generateSigningSeed,
  importSigningKey,
} from "@keyhole/core";
import { type OwnerFixture, ownerFixture } from "../test-support/owner-fixture.js";
import { readConfig } from "./config.js";

const fixtures: OwnerFixture[] = [];
after(async () => {
  for (const f of fixtures) await f.close();
});

let f: OwnerFixture;
beforeEach(async () => {
  f = await ownerFixture();
  fixtures.push(f);
  for (let i = 0; i < 5; i++) f.fake.appendAudit(i % 2 === 0 ? "secret.write" : "agent.create");
});

async function verify(): Promise<{ code: number; out: string; err: string }> {
  const run = await f.cli(["audit", "verify"]);
  return { code: run.code, out: run.io.out(), err: run.io.err() };
}

/** Recomputes every hash, as a server rewriting its history would. */
function rechain(): void {
  let previous = AUDIT_GENESIS;
  for (const entry of f.fake.audit) {
    previous = chainAuditHash(previous, auditFieldsFromView(entry), (d) =>
      createHash("sha256").update(d).digest(),
    );
    entry.hash = encodeBase64url(previous);
  }
}

test("an intact log verifies and its checkpoint is pinned", async () => {
  const result = await verify();
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /^audit log ok: 5 entries chain correctly; checkpoint at size 5/);
  const pin = (await readConfig(f.home)).audit_pin;
  assert.equal(pin?.size, 5);
  assert.equal(pin?.head, f.fake.audit.at(-1)?.hash);
  f.fake.appendAudit("secret.read");
  const again = await verify();
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /previous pin at size 5 still matches/);
});

test("an edited entry is reported with its seq", async () => {
  (f.fake.audit[2] as { detail: string }).detail = "edited";
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(
    result.err,
    /^keyhole: audit log verification failed: seq 3 does not match the hash chain/,
  );
});

test("a removed entry is reported", async () => {
  f.fake.audit.splice(1, 1);
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /entry seq 2 is missing/);
});

test("reordered entries are reported", async () => {
  const [a, b] = [f.fake.audit[1], f.fake.audit[2]];
  if (a && b) [f.fake.audit[1], f.fake.audit[2]] = [b, a];
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /seq 2 is out of order \(after seq 3\)/);
});

test("a log truncated after the pin is caught even when the server re-signs its checkpoint", async () => {
  assert.equal((await verify()).code, 0);
  f.fake.audit.splice(3);
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /checkpoint went back from size 5 to 3/);
});

test("history rewritten and re-chained after the pin is caught by the pin", async () => {
  assert.equal((await verify()).code, 0);
  (f.fake.audit[0] as { result: string }).result = "denied";
  rechain();
  f.fake.appendAudit("secret.read");
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /entries up to seq 5 changed since the pinned checkpoint/);
});

test("a checkpoint signed by another key than the pinned audit key is refused", async () => {
  const other = await importSigningKey(generateSigningSeed());
  Object.assign(f.fake.auditKey, other);
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /audit key differs from the one pinned at init/);
});

test("a checkpoint head that does not match the entries is refused", async () => {
  const last = f.fake.audit.at(-1);
  assert.ok(last);
  last.hash = encodeBase64url(new Uint8Array(32).fill(7));
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /seq 5 does not match/);
  assert.equal(decodeBase64url(last.hash).length, 32);
});

test("a log of several pages is checked page by page, pins in the middle of a page included", async () => {
  for (let i = 0; i < 2495; i++) f.fake.appendAudit("secret.read");
  const first = await verify();
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /^audit log ok: 2500 entries chain correctly/);
  const asked = f.fake.requests
    .filter((r) => r.path.startsWith("/v1/owner/audit?"))
    .map((r) => new URL(r.path, "http://x").searchParams);
  assert.ok(
    asked.every((q) => q.get("limit") === "1000"),
    "pages of 1,000",
  );
  for (const after of ["0", "1000", "2000"]) assert.ok(asked.some((q) => q.get("after") === after));
  for (let i = 0; i < 1234; i++) f.fake.appendAudit("secret.read");
  const second = await verify();
  assert.equal(second.code, 0, second.err);
  assert.match(second.out, /3734 entries .*\(previous pin at size 2500 still matches\)/);

  (f.fake.audit[1776] as { detail: string }).detail = "edited";
  assert.match((await verify()).err, /failed: seq 1777 does not match the hash chain/);
  (f.fake.audit[1776] as { detail: string }).detail = "";
  f.fake.audit.splice(2999, 1);
  f.fake.appendAudit("secret.read");
  assert.match((await verify()).err, /failed: entry seq 3000 is missing \(next is seq 3001\)/);
});

test("a server answering short pages gets one request per page, not a pile of guesses", async () => {
  for (let i = 0; i < 295; i++) f.fake.appendAudit("secret.read");
  f.fake.auditPageLimit = 7;
  f.fake.requests.length = 0;
  const result = await verify();
  assert.equal(result.code, 0, result.err);
  assert.match(result.out, /^audit log ok: 300 entries chain correctly/);
  const pages = f.fake.requests.filter((r) => r.path.startsWith("/v1/owner/audit?")).length;
  // 300 entries in pages of 7 is 43 pages; the first wrong guess costs one request, then none.
  assert.ok(pages <= 43 + 2, `${pages} page requests`);
});

test("a history rewritten below a pin that falls inside a page is caught", async () => {
  for (let i = 0; i < 1495; i++) f.fake.appendAudit("secret.read");
  assert.equal((await verify()).code, 0);
  (f.fake.audit[1200] as { result: string }).result = "denied";
  rechain();
  f.fake.appendAudit("secret.read");
  const result = await verify();
  assert.equal(result.code, 1);
  assert.match(result.err, /entries up to seq 1500 changed since the pinned checkpoint/);
});

test("audit lists entries as a table, newest N with --limit, or JSON", async () => {
  const table = await f.cli(["audit"]);
  assert.equal(table.code, 0, table.io.err());
  const lines = table.io.out().trim().split("\n");
  assert.match(lines[0] ?? "", /^SEQ\s+TIME\s+ACTOR\s+ACTION\s+RESULT/);
  assert.equal(lines.length, 6);
  const limited = await f.cli(["audit", "--limit", "2", "--json"]);
  const entries = JSON.parse(limited.io.out()) as { seq: number }[];
  assert.deepEqual(
    entries.map((e) => e.seq),
    [4, 5],
  );
});

test("audit filters are sent to the server", async () => {
  f.fake.requests.length = 0;
  await f.cli(["audit", "--agent", "bot", "--secret", "api-key", "--since", "1h"]);
  const query = f.fake.requests.find((r) => r.path.startsWith("/v1/owner/audit?"))?.path ?? "";
  const params = new URL(query, "http://x").searchParams;
  assert.equal(params.get("agent"), "bot");
  assert.equal(params.get("secret"), "api-key");
  assert.ok(Math.abs(Number(params.get("since")) - (Date.now() - 3_600_000)) < 60_000);
});

test("audit --follow prints new entries as they arrive and stops on a signal", async () => {
  const { memoryIo } = await import("../test-support/memory-io.js");
  const { runCli } = await import("../cli.js");
  const io = memoryIo({ env: f.env });
  const running = runCli(["audit", "--follow", "--json"], io);
  await new Promise((resolve) => setTimeout(resolve, 300));
  f.fake.appendAudit("secret.read");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  io.signal();
  assert.equal(await running, 0);
  const lines = io
    .out()
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { seq: number; action: string });
  assert.deepEqual(
    lines.map((l) => l.seq),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(lines.at(-1)?.action, "secret.read");
});
