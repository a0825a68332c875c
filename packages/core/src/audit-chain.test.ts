import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sha256Sync } from "./fixtures.test.helper.js";
import {
  AUDIT_GENESIS,
  AuditChainVerifier,
  type AuditEntryView,
  auditFieldsFromView,
  chainAuditHash,
  concatBytes,
  encodeBase64url,
  lp,
  u64,
  utf8,
} from "./index.js";

/** A log of `n` entries whose hashes are computed the long way (FORMATS.md), not by core. */
function log(n: number): AuditEntryView[] {
  const entries: AuditEntryView[] = [];
  let head = AUDIT_GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const entry: AuditEntryView = {
      seq,
      ts: 1_767_225_600_000 + seq,
      request_id: `req_${seq}`,
      actor_type: seq % 3 === 0 ? "owner" : "agent",
      actor_id: "agt_a",
      action: seq % 2 === 0 ? "secret.read" : "secret.list",
      result: "ok",
      agent_id: "agt_a",
      secret_id: seq % 2 === 0 ? "sec_s" : "",
      secret_version: seq % 2,
      client_ip: "127.0.0.1",
      user_agent: seq === 4 ? "agent/é✓😀" : "ua/1",
      detail: "",
      hash: "",
    };
    const canonical = concatBytes(
      lp("keyhole/v1/audit-entry"),
      u64(entry.seq),
      u64(entry.ts),
      ...[
        entry.request_id,
        entry.actor_type,
        entry.actor_id,
        entry.action,
        entry.result,
        entry.agent_id,
        entry.secret_id,
      ].map((t) => lp(utf8(t))),
      u64(entry.secret_version),
      ...[entry.client_ip, entry.user_agent, entry.detail].map((t) => lp(utf8(t))),
    );
    const leaf = sha256Sync(concatBytes(Uint8Array.of(0), lp(canonical)));
    head = sha256Sync(concatBytes(head, leaf));
    entries.push({ ...entry, hash: encodeBase64url(head) });
  }
  return entries;
}

function headOf(entry: AuditEntryView | undefined): Uint8Array {
  return new Uint8Array(Buffer.from(entry?.hash ?? "", "base64url"));
}

describe("audit chain verifier", () => {
  const entries = log(10);

  it("accepts an intact log and ends at its last hash", () => {
    const chain = new AuditChainVerifier(sha256Sync);
    assert.deepEqual(chain.verify(entries), { ok: true, size: 10, head: headOf(entries[9]) });
    assert.equal(chain.size, 10);
    assert.deepEqual(chain.head, headOf(entries[9]));
  });

  it("fed in pieces of any size, it reaches the same head and keeps the heads asked for", () => {
    for (const piece of [1, 3, 4, 10]) {
      const chain = new AuditChainVerifier(sha256Sync, { keepHeadsAt: [0, 4, 10, 11] });
      for (let i = 0; i < entries.length; i += piece) {
        assert.equal(chain.verify(entries.slice(i, i + piece)).ok, true);
      }
      assert.deepEqual(chain.verify([]), { ok: true, size: 10, head: headOf(entries[9]) });
      assert.deepEqual(chain.headAt(0), AUDIT_GENESIS);
      assert.deepEqual(chain.headAt(4), headOf(entries[3]));
      assert.deepEqual(chain.headAt(10), headOf(entries[9]));
      assert.equal(chain.headAt(11), null, "not reached");
      assert.equal(chain.headAt(5), null, "not asked for");
    }
  });

  it("starts after a known prefix", () => {
    const start = { size: 6, head: headOf(entries[5]) };
    const chain = new AuditChainVerifier(sha256Sync, { start });
    assert.deepEqual(chain.verify(entries.slice(6)), {
      ok: true,
      size: 10,
      head: headOf(entries[9]),
    });
    const wrong = new AuditChainVerifier(sha256Sync, { start: { ...start, size: 5 } });
    assert.deepEqual(wrong.verify(entries.slice(6)), {
      ok: false,
      seq: 6,
      reason: "sequence_gap",
    });
  });

  it("names the first entry whose hash, seq or fields do not continue the chain", () => {
    const check = (changed: AuditEntryView[]) => new AuditChainVerifier(sha256Sync).verify(changed);
    const edit = (i: number, change: Partial<AuditEntryView>) =>
      entries.map((e, j) => (j === i ? { ...e, ...change } : e));
    assert.deepEqual(check(edit(2, { detail: "x" })), {
      ok: false,
      seq: 3,
      reason: "hash_mismatch",
    });
    assert.deepEqual(check(edit(3, { user_agent: "agent/é✓😁" })), {
      ok: false,
      seq: 4,
      reason: "hash_mismatch",
    });
    assert.deepEqual(check(edit(6, { hash: `${entries[6]?.hash}A` })), {
      ok: false,
      seq: 7,
      reason: "hash_mismatch",
    });
    assert.deepEqual(check(entries.filter((e) => e.seq !== 5)), {
      ok: false,
      seq: 5,
      reason: "sequence_gap",
    });
    const swapped = [...entries];
    [swapped[4], swapped[5]] = [swapped[5] as AuditEntryView, swapped[4] as AuditEntryView];
    assert.deepEqual(check(swapped), { ok: false, seq: 5, reason: "sequence_gap" });
    // Renumbered to close a gap: the seq fits, the hash does not.
    const renumbered = entries
      .filter((e) => e.seq !== 5)
      .map((e) => ({
        ...e,
        seq: e.seq > 5 ? e.seq - 1 : e.seq,
      }));
    assert.deepEqual(check(renumbered), { ok: false, seq: 5, reason: "hash_mismatch" });
    assert.deepEqual(check(edit(1, { ts: -1 })), { ok: false, seq: 2, reason: "malformed_entry" });
    // Unvalidated JSON from an embedder: a field that is not a string is refused, never hashed
    // as "" (where `agent_id: ""` is a valid value) nor past the end of the encoder's buffer.
    for (const change of [
      { agent_id: 12345 },
      { detail: null },
      { user_agent: { length: 3 } },
      { request_id: ["req_2"] },
    ]) {
      const changed = edit(1, change as unknown as Partial<AuditEntryView>);
      assert.deepEqual(check(changed), { ok: false, seq: 2, reason: "malformed_entry" });
    }
  });

  it("after a failure, stays at the last good entry and keeps failing", () => {
    const chain = new AuditChainVerifier(sha256Sync);
    const bad = entries.map((e) => (e.seq === 3 ? { ...e, result: "denied" } : e));
    const failure = { ok: false, seq: 3, reason: "hash_mismatch" };
    assert.deepEqual(chain.verify(bad), failure);
    assert.equal(chain.size, 2);
    assert.deepEqual(chain.head, headOf(entries[1]));
    assert.deepEqual(chain.verify(entries.slice(2)), failure);
  });

  it("agrees with chainAuditHash, and hands out copies of its heads", () => {
    const chain = new AuditChainVerifier(sha256Sync);
    chain.verify(entries.slice(0, 1));
    const first = entries[0] as AuditEntryView;
    assert.deepEqual(
      chain.head,
      chainAuditHash(AUDIT_GENESIS, auditFieldsFromView(first), sha256Sync),
    );
    chain.head.fill(0);
    assert.equal(chain.verify(entries.slice(1)).ok, true);
  });

  it("refuses a start that is not a chain state", () => {
    assert.throws(
      () => new AuditChainVerifier(sha256Sync, { start: { size: -1, head: AUDIT_GENESIS } }),
      RangeError,
    );
    assert.throws(
      () => new AuditChainVerifier(sha256Sync, { start: { size: 0, head: new Uint8Array(31) } }),
      RangeError,
    );
  });
});
