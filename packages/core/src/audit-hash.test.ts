import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { sha256Sync } from "./fixtures.test.helper.js";
import {
  AUDIT_GENESIS,
  type AuditFields,
  auditLeaf,
  chainAuditHash,
  concatBytes,
  encodeAuditEntry,
  encodeCheckpoint,
  lp,
  u64,
  utf8,
} from "./index.js";

const entry: AuditFields = {
  seq: 7,
  ts: 1_767_225_600_000,
  requestId: "req_1",
  actorType: "agent",
  actorId: "agt_a",
  action: "secret.read",
  result: "ok",
  agentId: "agt_a",
  secretId: "sec_s",
  secretVersion: 2,
  clientIp: "127.0.0.1",
  userAgent: "ua/1",
  detail: "",
};

function chain(entries: readonly AuditFields[]): Uint8Array {
  let head = AUDIT_GENESIS;
  for (const e of entries) head = chainAuditHash(head, e, sha256Sync);
  return head;
}

describe("audit hash chain", () => {
  it("encodes the entry as a fixed order of LP and u64 fields", () => {
    assert.deepEqual(
      encodeAuditEntry(entry),
      concatBytes(
        lp("keyhole/v1/audit-entry"),
        u64(7),
        u64(entry.ts),
        lp("req_1"),
        lp("agent"),
        lp("agt_a"),
        lp("secret.read"),
        lp("ok"),
        lp("agt_a"),
        lp("sec_s"),
        u64(2),
        lp("127.0.0.1"),
        lp("ua/1"),
        lp(""),
      ),
    );
  });

  it("the one-buffer encoder writes exactly the LP/u64 form, for any entry (property)", () => {
    const text = fc.string({ unit: "binary", maxLength: 40 });
    const n = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    fc.assert(
      fc.property(
        fc.record({
          seq: n,
          ts: n,
          requestId: text,
          actorType: fc.constantFrom("owner", "agent", "anonymous"),
          actorId: text,
          action: text,
          result: text,
          agentId: text,
          secretId: text,
          secretVersion: n,
          clientIp: text,
          userAgent: text,
          detail: text,
        }),
        (e: AuditFields) => {
          const reference = concatBytes(
            lp("keyhole/v1/audit-entry"),
            u64(e.seq),
            u64(e.ts),
            ...[e.requestId, e.actorType, e.actorId, e.action, e.result, e.agentId, e.secretId].map(
              (t) => lp(t),
            ),
            u64(e.secretVersion),
            ...[e.clientIp, e.userAgent, e.detail].map((t) => lp(t)),
          );
          assert.deepEqual(encodeAuditEntry(e), reference);
          assert.deepEqual(
            auditLeaf(e, sha256Sync),
            sha256Sync(concatBytes(Uint8Array.of(0), lp(reference))),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("entries far larger than the reused buffer, then small ones again, encode exactly", () => {
    const reference = (e: AuditFields) =>
      concatBytes(
        lp("keyhole/v1/audit-entry"),
        u64(e.seq),
        u64(e.ts),
        ...[e.requestId, e.actorType, e.actorId, e.action, e.result, e.agentId, e.secretId].map(
          (t) => lp(t),
        ),
        u64(e.secretVersion),
        ...[e.clientIp, e.userAgent, e.detail].map((t) => lp(t)),
      );
    const large: AuditFields[] = [
      { ...entry, detail: "✓".repeat(1500), userAgent: "😀".repeat(400) },
      { ...entry, requestId: "r".repeat(5000), detail: `${"x".repeat(3000)}é` },
      { ...entry, action: "\ud800".repeat(2000), clientIp: "€".repeat(6000) },
      entry,
    ];
    for (const e of [...large, ...large.reverse()]) {
      assert.deepEqual(encodeAuditEntry(e), reference(e));
      assert.deepEqual(
        auditLeaf(e, sha256Sync),
        sha256Sync(concatBytes(Uint8Array.of(0), lp(reference(e)))),
      );
    }
  });

  it("leaf = SHA-256(0x00 ‖ LP(entry)) and entry_hash = SHA-256(previous ‖ leaf), from 32 zero bytes", () => {
    assert.deepEqual(AUDIT_GENESIS, new Uint8Array(32));
    const leaf = sha256Sync(concatBytes(Uint8Array.of(0), lp(encodeAuditEntry(entry))));
    assert.deepEqual(auditLeaf(entry, sha256Sync), leaf);
    assert.deepEqual(
      chainAuditHash(AUDIT_GENESIS, entry, sha256Sync),
      sha256Sync(concatBytes(new Uint8Array(32), leaf)),
    );
  });

  it("every field changes the entry hash, and shifting text between fields does too", () => {
    const reference = chainAuditHash(AUDIT_GENESIS, entry, sha256Sync);
    const changes: Partial<AuditFields>[] = [
      { seq: 8 },
      { ts: entry.ts + 1 },
      { requestId: "req_2" },
      { actorType: "owner" },
      { actorId: "agt_b" },
      { action: "secret.list" },
      { result: "denied" },
      { agentId: "" },
      { secretId: "sec_t" },
      { secretVersion: 3 },
      { clientIp: "::1" },
      { userAgent: "ua/2" },
      { detail: "x" },
      { actorId: "agt_as", action: "ecret.read" },
      { userAgent: "ua/", detail: "1" },
    ];
    const seen = new Set<string>([Buffer.from(reference).toString("hex")]);
    for (const change of changes) {
      const hash = Buffer.from(
        chainAuditHash(AUDIT_GENESIS, { ...entry, ...change }, sha256Sync),
      ).toString("hex");
      assert.ok(!seen.has(hash), JSON.stringify(change));
      seen.add(hash);
    }
  });

  it("reordering, deleting or truncating entries changes the head", () => {
    const a = { ...entry, seq: 1 };
    const b = { ...entry, seq: 2, action: "secret.list" };
    const c = { ...entry, seq: 3, result: "denied" };
    const head = chain([a, b, c]);
    assert.notDeepEqual(chain([a, c, b]), head);
    assert.notDeepEqual(chain([a, c]), head);
    assert.notDeepEqual(chain([a, b]), head);
    assert.deepEqual(chain([a, b, c]), head);
  });

  it("rejects negative or unsafe numbers rather than wrapping", () => {
    assert.throws(() => encodeAuditEntry({ ...entry, seq: -1 }), RangeError);
    assert.throws(() => encodeAuditEntry({ ...entry, secretVersion: 2 ** 53 }), RangeError);
  });

  it("the checkpoint is 'keyhole/v1/audit\\n' log_id '\\n' size '\\n' base64(head) '\\n' (padded base64)", () => {
    const head = new Uint8Array(32).fill(0xfb);
    const text = `keyhole/v1/audit\nvlt_v\n3\n${Buffer.from(head).toString("base64")}\n`;
    assert.ok(text.includes("+") || text.includes("/"), "standard alphabet, not base64url");
    assert.ok(text.includes("="), "with padding");
    assert.deepEqual(encodeCheckpoint("vlt_v", 3, head), utf8(text));
  });
});
