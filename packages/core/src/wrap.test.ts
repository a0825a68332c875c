import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { makeOwner, type Owner, rejectsWith } from "./fixtures.test.helper.js";
import {
  agentRecipientId,
  concatBytes,
  deriveRecipientKeyPair,
  encodeWrapAad,
  fingerprint,
  isKeyholeError,
  lp,
  ownerRecipientId,
  parseWrap,
  randomBytes,
  u64,
  unwrapDek,
  utf8,
  WRAP_LENGTH,
  WRAP_MAGIC,
  wrapDek,
} from "./index.js";

const ref = { vaultId: "vlt_v", secretId: "sec_s", version: 4 };

describe("DEK wrap KHW1", () => {
  let owner: Owner;
  before(async () => {
    owner = await makeOwner();
  });

  it("round-trips a DEK and is 'KHW1' ‖ 0x01 ‖ fpr(pk) ‖ enc[32] ‖ ct[48], 101 bytes", async () => {
    const dek = randomBytes(32);
    const dekId = randomBytes(16);
    const recipient = {
      recipientId: ownerRecipientId(ref.vaultId),
      publicKey: owner.enc.publicKey,
    };
    const wrap = await wrapDek(ref, dekId, dek, recipient);
    assert.equal(WRAP_LENGTH, 101);
    assert.equal(wrap.length, 101);
    assert.deepEqual(wrap.subarray(0, 4), WRAP_MAGIC);
    assert.deepEqual(WRAP_MAGIC, utf8("KHW1"));
    assert.equal(wrap[4], 0x01);
    assert.deepEqual(wrap.subarray(5, 21), await fingerprint(owner.enc.publicKey));
    const parsed = parseWrap(wrap);
    assert.deepEqual(parsed.enc, wrap.subarray(21, 53));
    assert.deepEqual(parsed.ciphertext, wrap.subarray(53));
    assert.deepEqual(await unwrapDek(ref, dekId, recipient.recipientId, owner.enc, wrap), dek);
  });

  it("uses a fresh HPKE ephemeral key for every wrap", async () => {
    const dek = randomBytes(32);
    const dekId = randomBytes(16);
    const recipient = { recipientId: "owner:vlt_v", publicKey: owner.enc.publicKey };
    const a = await wrapDek(ref, dekId, dek, recipient);
    const b = await wrapDek(ref, dekId, dek, recipient);
    assert.notDeepEqual(a.subarray(21, 53), b.subarray(21, 53));
  });

  it("the AAD binds vault, secret, version, dek id, recipient id and recipient key, in that order", () => {
    const dekId = randomBytes(16);
    const recipient = { recipientId: agentRecipientId("agt_x"), publicKey: owner.enc.publicKey };
    assert.deepEqual(
      encodeWrapAad(ref, dekId, recipient),
      concatBytes(
        lp("keyhole/v1/dek-wrap"),
        lp("vlt_v"),
        lp("sec_s"),
        u64(4),
        lp(dekId),
        lp("agent:agt_x"),
        lp(owner.enc.publicKey),
      ),
    );
  });

  it("recipient ids are owner:<vault id> and agent:<agent id>", () => {
    assert.equal(ownerRecipientId("vlt_a"), "owner:vlt_a");
    assert.equal(agentRecipientId("agt_b"), "agent:agt_b");
  });

  it("wrapDek refuses a DEK, dek id or public key of the wrong length", async () => {
    const recipient = { recipientId: "owner:vlt_v", publicKey: owner.enc.publicKey };
    await rejectsWith(
      () => wrapDek(ref, randomBytes(16), randomBytes(31), recipient),
      "invalid_envelope",
    );
    await rejectsWith(
      () => wrapDek(ref, randomBytes(15), randomBytes(32), recipient),
      "invalid_envelope",
    );
    await rejectsWith(
      () =>
        wrapDek(ref, randomBytes(16), randomBytes(32), {
          ...recipient,
          publicKey: randomBytes(31),
        }),
      "invalid_envelope",
    );
  });

  it("parseWrap rejects any length other than 101 and non-bytes", () => {
    const isInvalid = (e: unknown) => isKeyholeError(e) && e.code === "invalid_envelope";
    const base = concatBytes(WRAP_MAGIC, Uint8Array.of(1), new Uint8Array(96));
    assert.doesNotThrow(() => parseWrap(base));
    assert.throws(() => parseWrap(base.subarray(0, 100)), isInvalid);
    assert.throws(() => parseWrap(concatBytes(base, Uint8Array.of(0))), isInvalid);
    assert.throws(() => parseWrap(null as unknown as Uint8Array), isInvalid);
  });

  // Regression: hpke.ts copied inputs with `bytes.slice().buffer`, which for a Node Buffer (whose
  // slice is a view) is the whole shared 8 KiB pool: keys derived from a Buffer were wrong and
  // wraps given as Buffers did not open.
  it("accepts Node Buffers everywhere: key derivation, public keys and wrap bytes", async () => {
    const ikm = randomBytes(32);
    const fromArray = await deriveRecipientKeyPair(ikm);
    const fromBuffer = await deriveRecipientKeyPair(Buffer.from(ikm));
    assert.deepEqual(fromBuffer.publicKey, fromArray.publicKey);
    const dek = randomBytes(32);
    const dekId = randomBytes(16);
    const recipient = { recipientId: "agent:agt_b", publicKey: Buffer.from(fromArray.publicKey) };
    const wrap = await wrapDek(ref, Buffer.from(dekId), Buffer.from(dek), recipient);
    const opened = await unwrapDek(
      ref,
      Buffer.from(dekId),
      "agent:agt_b",
      fromBuffer,
      Buffer.from(wrap),
    );
    assert.deepEqual(new Uint8Array(opened), dek);
  });
});
