import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { rejectsWith } from "./fixtures.test.helper.js";
import {
  concatBytes,
  DEK_ID_LENGTH,
  DEK_LENGTH,
  encodeValueAad,
  isKeyholeError,
  lp,
  openValue,
  parseValueEnvelope,
  randomBytes,
  SUITE_V1,
  sealValue,
  u64,
  utf8,
  VALUE_MAGIC,
} from "./index.js";

const ref = { vaultId: "vlt_v", secretId: "sec_s", version: 1 };

describe("value envelope KHS1", () => {
  it("round-trips any value, and the envelope is 33 + length + 16 bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (value) => {
        const { envelope, dek, dekId } = await sealValue(ref, value);
        assert.equal(envelope.length, 4 + 1 + 16 + 12 + value.length + 16);
        assert.equal(dek.length, DEK_LENGTH);
        assert.equal(dekId.length, DEK_ID_LENGTH);
        assert.deepEqual(await openValue(ref, dek, envelope), value);
      }),
      { numRuns: 60 },
    );
  });

  it("starts with 'KHS1', suite 0x01 and the dek id", async () => {
    const { envelope, dekId } = await sealValue(ref, utf8("x"));
    assert.deepEqual(envelope.subarray(0, 4), utf8("KHS1"));
    assert.deepEqual(VALUE_MAGIC, utf8("KHS1"));
    assert.equal(envelope[4], SUITE_V1);
    assert.equal(SUITE_V1, 1);
    assert.deepEqual(envelope.subarray(5, 21), dekId);
    const parsed = parseValueEnvelope(envelope);
    assert.deepEqual(parsed.dekId, dekId);
    assert.deepEqual(parsed.nonce, envelope.subarray(21, 33));
    assert.deepEqual(parsed.ciphertext, envelope.subarray(33));
  });

  it("is AES-256-GCM over the documented AAD: node:crypto opens it independently", async () => {
    const value = utf8("sk-live-123");
    const { envelope, dek, dekId } = await sealValue(ref, value);
    const aad = concatBytes(
      lp("keyhole/v1/secret-value"),
      lp(ref.vaultId),
      lp(ref.secretId),
      u64(ref.version),
      lp(dekId),
    );
    assert.deepEqual(encodeValueAad(ref, dekId), aad);
    const decipher = createDecipheriv("aes-256-gcm", dek, envelope.subarray(21, 33));
    decipher.setAAD(aad);
    decipher.setAuthTag(envelope.subarray(envelope.length - 16));
    const plain = Buffer.concat([
      decipher.update(envelope.subarray(33, envelope.length - 16)),
      decipher.final(),
    ]);
    assert.deepEqual(new Uint8Array(plain), value);
  });

  it("uses a fresh DEK, dek id and nonce for every seal", async () => {
    const a = await sealValue(ref, utf8("same"));
    const b = await sealValue(ref, utf8("same"));
    assert.notDeepEqual(a.dek, b.dek);
    assert.notDeepEqual(a.dekId, b.dekId);
    assert.notDeepEqual(a.envelope.subarray(21, 33), b.envelope.subarray(21, 33));
  });

  it("a wrong DEK, or a DEK of the wrong length, is decrypt_failed", async () => {
    const { envelope, dek } = await sealValue(ref, utf8("x"));
    await rejectsWith(() => openValue(ref, randomBytes(32), envelope), "decrypt_failed");
    await rejectsWith(() => openValue(ref, dek.subarray(0, 16), envelope), "decrypt_failed");
    await rejectsWith(
      () => openValue(ref, concatBytes(dek, Uint8Array.of(0)), envelope),
      "decrypt_failed",
    );
  });

  it("parseValueEnvelope rejects anything shorter than header + tag, and non-bytes", () => {
    const isInvalid = (e: unknown) => isKeyholeError(e) && e.code === "invalid_envelope";
    const header = concatBytes(VALUE_MAGIC, Uint8Array.of(1), new Uint8Array(28));
    assert.throws(() => parseValueEnvelope(concatBytes(header, new Uint8Array(15))), isInvalid);
    assert.doesNotThrow(() => parseValueEnvelope(concatBytes(header, new Uint8Array(16))));
    assert.throws(() => parseValueEnvelope("KHS1" as unknown as Uint8Array), isInvalid);
    assert.throws(() => parseValueEnvelope(Array.from(header) as unknown as Uint8Array), isInvalid);
  });

  it("opens an envelope given as a Node Buffer", async () => {
    const { envelope, dek } = await sealValue(ref, utf8("buffer"));
    assert.deepEqual(await openValue(ref, Buffer.from(dek), Buffer.from(envelope)), utf8("buffer"));
  });
});
