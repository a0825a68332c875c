/**
 * SECURITY-TESTS #5 "Tamper": every single-bit flip of a token, a KHS1 envelope, a KHW1 wrap and a
 * KHG1 signature or statement; truncation at every length; extension and trailing bytes. Each is
 * rejected with the one generic error, and nothing partial rides along on the error.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  type Agent,
  assertNoLeak,
  flipBit,
  inspectFully,
  makeAgent,
  makeOwner,
  must,
  type Owner,
  rejectsWith,
  renderings,
  type SealedVersion,
  sealVersion,
} from "./fixtures.test.helper.js";
import {
  AgentToken,
  agentRecipientId,
  concatBytes,
  decodeBase64url,
  encodeBase64url,
  encodeGrantMessage,
  type GrantStatement,
  isKeyholeError,
  openValue,
  parseToken,
  randomBytes,
  unwrapDek,
  utf8,
  verify,
  verifyGrant,
} from "./index.js";

const isInvalidToken = (error: unknown) => isKeyholeError(error) && error.code === "invalid_token";

describe("tamper: agent token", () => {
  const token = AgentToken.generate(randomBytes(16));
  const text = token.encode();
  const bytes = decodeBase64url(text.slice(4));

  it("every single-bit flip of the token bytes, re-encoded, is invalid_token", () => {
    assert.equal(bytes.length, 68);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      assert.throws(
        () => parseToken(`kh1_${encodeBase64url(flipBit(bytes, bit))}`),
        isInvalidToken,
        `bit ${bit}`,
      );
    }
  });

  it("every single-bit flip of the token text is invalid_token", () => {
    for (let i = 0; i < text.length; i++) {
      for (let b = 0; b < 8; b++) {
        const ch = String.fromCharCode(text.charCodeAt(i) ^ (1 << b));
        const flipped = text.slice(0, i) + ch + text.slice(i + 1);
        assert.throws(() => parseToken(flipped), isInvalidToken, `char ${i} bit ${b}`);
      }
    }
  });

  it("truncation at every length, extension by one character and trailing bytes are invalid_token", () => {
    for (let length = 0; length < text.length; length++) {
      assert.throws(() => parseToken(text.slice(0, length)), isInvalidToken, `length ${length}`);
    }
    for (const ch of ["A", "Q", "-", "=", "\n", " "])
      assert.throws(() => parseToken(text + ch), isInvalidToken);
    for (const extra of [Uint8Array.of(0), Uint8Array.of(0, 0, 0)]) {
      assert.throws(
        () => parseToken(`kh1_${encodeBase64url(concatBytes(bytes, extra))}`),
        isInvalidToken,
      );
    }
    assert.throws(
      () => parseToken(`kh1_${encodeBase64url(bytes.subarray(0, 67))}`),
      isInvalidToken,
    );
  });

  it("the untampered token still parses (the loops above test the flips, not a broken fixture)", () => {
    assert.equal(parseToken(text).encode(), text);
  });
});

describe("tamper: KHS1, KHW1 and KHG1", () => {
  let owner: Owner;
  let agent: Agent;
  let sealed: SealedVersion;
  let grant: { wrap: Uint8Array; statement: GrantStatement; sig: Uint8Array };
  const canary = utf8(`canary-${encodeBase64url(randomBytes(12))}`);
  const recipientId = "agent:agt_AAAAAAAAAAAAAAAAAAAAAA";

  before(async () => {
    owner = await makeOwner();
    agent = await makeAgent(owner, "agt_AAAAAAAAAAAAAAAAAAAAAA");
    sealed = await sealVersion(
      owner,
      { vaultId: "vlt_v", secretId: "sec_s", version: 5 },
      "alpha",
      canary,
      [agent],
    );
    grant = must(sealed.grants, agent.agentId);
  });

  async function openFails(envelope: Uint8Array, what: string): Promise<void> {
    const error = await rejectsWith(
      () => openValue(sealed.ref, sealed.dek, envelope),
      ["invalid_envelope", "decrypt_failed"],
    );
    assertNoLeak(inspectFully(error), [...renderings(canary), "canary-"], what);
  }

  async function unwrapFails(wrap: Uint8Array, what: string): Promise<void> {
    const error = await rejectsWith(
      () => unwrapDek(sealed.ref, sealed.dekId, recipientId, agent.keys.recipient, wrap),
      ["invalid_envelope", "decrypt_failed"],
    );
    assertNoLeak(inspectFully(error), renderings(sealed.dek), what);
  }

  it("the untampered envelope, wrap and grant open and verify", async () => {
    assert.equal(agentRecipientId(agent.agentId), recipientId);
    assert.deepEqual(await openValue(sealed.ref, sealed.dek, sealed.envelope), canary);
    assert.deepEqual(
      await unwrapDek(sealed.ref, sealed.dekId, recipientId, agent.keys.recipient, grant.wrap),
      sealed.dek,
    );
    assert.equal(await verifyGrant(owner.signing.publicKey, grant.statement, grant.sig), true);
  });

  it("every single-bit flip of a KHS1 envelope fails with a generic error and no plaintext", async () => {
    for (let bit = 0; bit < sealed.envelope.length * 8; bit++) {
      await openFails(flipBit(sealed.envelope, bit), `bit ${bit}`);
    }
  });

  it("a KHS1 truncated at every length, extended by a byte, or with trailing bytes fails", async () => {
    for (let length = 0; length < sealed.envelope.length; length++) {
      await openFails(sealed.envelope.subarray(0, length), `length ${length}`);
    }
    for (const extra of [Uint8Array.of(0), Uint8Array.of(0xff), new Uint8Array(16)]) {
      await openFails(concatBytes(sealed.envelope, extra), "extended");
    }
  });

  // 101 × 8 HPKE opens (about 2 ms each): the one expensive loop of this file.
  it("every single-bit flip of a KHW1 wrap fails with a generic error and no DEK", async () => {
    for (let bit = 0; bit < grant.wrap.length * 8; bit++) {
      await unwrapFails(flipBit(grant.wrap, bit), `bit ${bit}`);
    }
  });

  it("a KHW1 truncated at every length, extended by a byte, or with trailing bytes fails", async () => {
    for (let length = 0; length < grant.wrap.length; length++) {
      await unwrapFails(grant.wrap.subarray(0, length), `length ${length}`);
    }
    for (const extra of [Uint8Array.of(0), new Uint8Array(32)]) {
      await unwrapFails(concatBytes(grant.wrap, extra), "extended");
    }
  });

  it("every single-bit flip of a KHG1 signature fails verification", async () => {
    for (let bit = 0; bit < grant.sig.length * 8; bit++) {
      assert.equal(
        await verifyGrant(owner.signing.publicKey, grant.statement, flipBit(grant.sig, bit)),
        false,
        `bit ${bit}`,
      );
    }
  });

  it("a KHG1 signature truncated at every length or extended fails verification", async () => {
    for (let length = 0; length < grant.sig.length; length++) {
      assert.equal(
        await verifyGrant(owner.signing.publicKey, grant.statement, grant.sig.subarray(0, length)),
        false,
      );
    }
    assert.equal(
      await verifyGrant(
        owner.signing.publicKey,
        grant.statement,
        concatBytes(grant.sig, Uint8Array.of(0)),
      ),
      false,
    );
  });

  it("every single-bit flip of the signed KHG1 message fails verification", async () => {
    const message = await encodeGrantMessage(grant.statement);
    for (let bit = 0; bit < message.length * 8; bit++) {
      assert.equal(
        await verify(owner.signing.publicKey, flipBit(message, bit), grant.sig),
        false,
        `bit ${bit}`,
      );
    }
    assert.equal(
      await verify(owner.signing.publicKey, message.subarray(0, message.length - 1), grant.sig),
      false,
    );
    assert.equal(
      await verify(owner.signing.publicKey, concatBytes(message, Uint8Array.of(0)), grant.sig),
      false,
    );
  });

  it("changing any field of the grant statement fails verification", async () => {
    const s = grant.statement;
    const flip0 = (bytes: Uint8Array) => flipBit(bytes, 0);
    const changes: [string, GrantStatement][] = [
      ["vaultId", { ...s, vaultId: "vlt_w" }],
      ["secretId", { ...s, secretId: "sec_t" }],
      ["secretName", { ...s, secretName: "alphb" }],
      ["version", { ...s, version: s.version + 1 }],
      ["dekId", { ...s, dekId: flip0(s.dekId) }],
      ["agentId", { ...s, agentId: "agt_BAAAAAAAAAAAAAAAAAAAAA" }],
      ["recipientFingerprint", { ...s, recipientFingerprint: flip0(s.recipientFingerprint) }],
      ["valueEnvelope", { ...s, valueEnvelope: flip0(s.valueEnvelope) }],
      ["wrap", { ...s, wrap: flip0(s.wrap) }],
      ["issuedAt", { ...s, issuedAt: s.issuedAt + 1 }],
      ["notAfter", { ...s, notAfter: 1 }],
      ["allowedHosts (added)", { ...s, allowedHosts: ["api.example.com", "evil.example.com"] }],
      ["allowedHosts (removed)", { ...s, allowedHosts: [] }],
      ["allowedHosts (changed)", { ...s, allowedHosts: ["api.example.co"] }],
    ];
    assert.equal(changes.length, Object.keys(s).length + 2, "one change per field");
    for (const [field, changed] of changes) {
      assert.equal(await verifyGrant(owner.signing.publicKey, changed, grant.sig), false, field);
    }
  });
});
