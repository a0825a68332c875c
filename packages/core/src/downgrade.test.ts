/**
 * SECURITY-TESTS #7 "Downgrade": an unknown or reserved suite, another magic, another token
 * version. Decoders accept an allowlist (suite 0x01, "KHS1", "KHW1", "kh1_") and nothing else.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  type Agent,
  makeAgent,
  makeOwner,
  must,
  type Owner,
  rejectsWith,
  type SealedVersion,
  sealVersion,
  withByte,
} from "./fixtures.test.helper.js";
import {
  AgentToken,
  agentRecipientId,
  concatBytes,
  decodeBase64url,
  isKeyholeError,
  openValue,
  parseToken,
  parseValueEnvelope,
  parseWrap,
  randomBytes,
  unwrapDek,
  utf8,
} from "./index.js";

const isInvalidEnvelope = (error: unknown) =>
  isKeyholeError(error) && error.code === "invalid_envelope";

describe("downgrade", () => {
  let owner: Owner;
  let agent: Agent;
  let sealed: SealedVersion;
  let wrap: Uint8Array;

  before(async () => {
    owner = await makeOwner();
    agent = await makeAgent(owner, "agt_AAAAAAAAAAAAAAAAAAAAAA");
    sealed = await sealVersion(
      owner,
      { vaultId: "vlt_v", secretId: "sec_s", version: 1 },
      "alpha",
      utf8("v"),
      [agent],
    );
    wrap = must(sealed.grants, agent.agentId).wrap;
  });

  const open = (envelope: Uint8Array) => openValue(sealed.ref, sealed.dek, envelope);
  const unwrap = (bytes: Uint8Array) =>
    unwrapDek(
      sealed.ref,
      sealed.dekId,
      agentRecipientId(agent.agentId),
      agent.keys.recipient,
      bytes,
    );

  it("suite 0x00, 0x02 (reserved post-quantum) and 0xff are invalid_envelope for KHS1 and KHW1", async () => {
    for (const suite of [0x00, 0x02, 0xff]) {
      await rejectsWith(() => open(withByte(sealed.envelope, 4, suite)), "invalid_envelope");
      await rejectsWith(() => unwrap(withByte(wrap, 4, suite)), "invalid_envelope");
    }
    assert.deepEqual(await open(sealed.envelope), utf8("v"), "control: suite 0x01 opens");
  });

  it("every suite byte but 0x01 is refused by both parsers", () => {
    for (let suite = 0; suite < 256; suite++) {
      if (suite === 0x01) continue;
      assert.throws(
        () => parseValueEnvelope(withByte(sealed.envelope, 4, suite)),
        isInvalidEnvelope,
      );
      assert.throws(() => parseWrap(withByte(wrap, 4, suite)), isInvalidEnvelope);
    }
  });

  it("another KHS magic ('KHS0', 'KHS2', lower case, a wrap's 'KHW1') is invalid_envelope", async () => {
    for (const magic of ["KHS0", "KHS2", "khs1", "Khs1", "KHS\u0000", "KHW1"]) {
      await rejectsWith(
        () => open(concatBytes(utf8(magic), sealed.envelope.subarray(4))),
        "invalid_envelope",
      );
    }
  });

  it("another KHW magic ('KHW0', 'KHW2', lower case, a value's 'KHS1') is invalid_envelope", async () => {
    for (const magic of ["KHW0", "KHW2", "khw1", "kHW1", "KHS1"]) {
      await rejectsWith(
        () => unwrap(concatBytes(utf8(magic), wrap.subarray(4))),
        "invalid_envelope",
      );
    }
  });

  it("a wrap is never accepted as a value envelope, nor a value as a wrap", async () => {
    await rejectsWith(() => open(wrap), "invalid_envelope");
    await rejectsWith(() => unwrap(sealed.envelope), "invalid_envelope");
  });

  it("token prefixes kh0_, kh2_, KH1_ and others are invalid_token, even with a valid body", () => {
    const text = AgentToken.generate(randomBytes(16)).encode();
    const body = text.slice(4);
    assert.equal(decodeBase64url(body).length, 68);
    for (const prefix of ["kh0_", "kh2_", "KH1_", "Kh1_", "kH1_", "kh1-", "kh1.", "khx_", "age1"]) {
      assert.throws(
        () => parseToken(prefix + body),
        (error) => isKeyholeError(error) && error.code === "invalid_token",
        prefix,
      );
    }
    assert.equal(parseToken(text).encode(), text, "control: kh1_ parses");
  });
});
