import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import { describe, it } from "node:test";
import { format, inspect } from "node:util";
import fc from "fast-check";
import { assertNoLeak, renderings } from "./fixtures.test.helper.js";
import {
  AgentToken,
  concatBytes,
  crc32,
  decodeTokenId,
  encodeBase64url,
  formatAgentAuthorization,
  isKeyholeError,
  parseAgentAuthorization,
  parseToken,
  randomBytes,
  TOKEN_LENGTH,
  TOKEN_PATTERN,
  TOKEN_PREFIX,
  toHex,
  u32,
  utf8,
  verifierMessage,
} from "./index.js";

function tokenText(id: Uint8Array, seed: Uint8Array, fpr: Uint8Array): string {
  const body = concatBytes(id, seed, fpr);
  return `kh1_${encodeBase64url(concatBytes(body, u32(crc32(body))))}`;
}

function isInvalidToken(error: unknown): boolean {
  return isKeyholeError(error) && error.code === "invalid_token";
}

describe("agent token", () => {
  it("encodes as kh1_ + base64url(id ‖ seed ‖ owner_fpr ‖ crc32 big-endian), 95 characters", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (id, seed, fpr) => {
          const text = new AgentToken(id, seed, fpr).encode();
          assert.equal(text, tokenText(id, seed, fpr));
          assert.equal(text.length, TOKEN_LENGTH);
          assert.equal(TOKEN_LENGTH, 95);
          assert.ok(text.startsWith(TOKEN_PREFIX));
          assert.match(text, new RegExp(`^${TOKEN_PATTERN.source}$`));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("parses back to the same id, owner fingerprint and text", () => {
    const fpr = randomBytes(16);
    const token = AgentToken.generate(fpr);
    const text = token.encode();
    const parsed = parseToken(text);
    assert.deepEqual(parsed.tokenId, token.tokenId);
    assert.deepEqual(parsed.ownerFingerprint, fpr);
    assert.equal(parsed.encode(), text);
  });

  it("generate makes a fresh id and seed each time", () => {
    const fpr = randomBytes(16);
    const a = AgentToken.generate(fpr);
    const b = AgentToken.generate(fpr);
    assert.notDeepEqual(a.tokenId, b.tokenId);
    assert.notEqual(a.encode().slice(26), b.encode().slice(26));
  });

  it("TOKEN_PATTERN finds a token inside surrounding text, as a secret scanner would", () => {
    const text = AgentToken.generate(randomBytes(16)).encode();
    const found = `export KEYHOLE_TOKEN="${text}"\n`.match(TOKEN_PATTERN);
    assert.equal(found?.[0], text);
  });

  it("the constructor copies its inputs and refuses wrong lengths with invalid_token", () => {
    const id = randomBytes(16);
    const seed = randomBytes(32);
    const fpr = randomBytes(16);
    const token = new AgentToken(id, seed, fpr);
    const before = token.encode();
    id.fill(0);
    seed.fill(0);
    fpr.fill(0);
    assert.equal(token.encode(), before);
    for (const [i, s, f] of [
      [15, 32, 16],
      [16, 31, 16],
      [16, 32, 17],
      [16, 33, 16],
    ] as const) {
      assert.throws(
        () => new AgentToken(new Uint8Array(i), new Uint8Array(s), new Uint8Array(f)),
        isInvalidToken,
      );
    }
  });

  it("parseToken rejects a wrong prefix, a wrong length and a wrong type", () => {
    const text = AgentToken.generate(randomBytes(16)).encode();
    const body = text.slice(4);
    for (const bad of [
      `kh0_${body}`,
      `kh2_${body}`,
      `KH1_${body}`,
      `kh1-${body}`,
      `xkh1${body}`,
      body,
      text.slice(0, -1),
      `${text}A`,
      `${text}\n`,
      ` ${text}`,
      "",
    ]) {
      assert.throws(() => parseToken(bad), isInvalidToken, JSON.stringify(bad.slice(0, 6)));
    }
    assert.throws(() => parseToken(undefined as unknown as string), isInvalidToken);
  });

  it("parseToken rejects any character outside the base64url alphabet at any position", () => {
    const text = AgentToken.generate(randomBytes(16)).encode();
    for (const ch of ["+", "/", "=", " ", ".", "é", "\u0000"]) {
      for (let i = 4; i < text.length; i++) {
        const bad = text.slice(0, i) + ch + text.slice(i + 1);
        assert.throws(() => parseToken(bad), isInvalidToken);
      }
    }
  });

  it("parseToken rejects a checksum mismatch", () => {
    const id = randomBytes(16);
    const seed = randomBytes(32);
    const fpr = randomBytes(16);
    const body = concatBytes(id, seed, fpr);
    const wrongCrc = u32((crc32(body) ^ 1) >>> 0);
    assert.throws(
      () => parseToken(`kh1_${encodeBase64url(concatBytes(body, wrongCrc))}`),
      isInvalidToken,
    );
  });

  it("parseToken rejects non-canonical base64url (non-zero trailing bits in the last character)", () => {
    const text = AgentToken.generate(randomBytes(16)).encode();
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(text.charAt(94));
    assert.equal(last & 3, 0, "68 bytes leave two zero bits in the last character");
    for (const extra of [1, 2, 3]) {
      const bad = text.slice(0, 94) + alphabet.charAt(last | extra);
      assert.throws(() => parseToken(bad), isInvalidToken);
    }
  });

  it("the parse error never echoes the input", () => {
    const text = AgentToken.generate(randomBytes(16)).encode();
    const bad = `${text.slice(0, 50)}+${text.slice(51)}`;
    try {
      parseToken(bad);
      assert.fail("accepted");
    } catch (error) {
      assertNoLeak(
        inspect(error, { showHidden: true, depth: 10 }),
        [bad.slice(4, 40), bad.slice(51)],
        "error",
      );
    }
  });

  it("String, template, JSON, util.inspect and util.format never reveal the token or its seed", () => {
    const seed = randomBytes(32);
    const token = new AgentToken(randomBytes(16), seed, randomBytes(16));
    const text = token.encode();
    const outputs = [
      String(token),
      `${token}`,
      JSON.stringify(token),
      JSON.stringify({ nested: { token } }),
      inspect(token, { showHidden: true, depth: 10 }),
      inspect({ nested: [token] }, { showHidden: true, depth: 10 }),
      inspect(token, { showHidden: true, depth: 10, customInspect: false }),
      format("%s %o %O %j", token, token, token, token),
    ];
    for (const output of outputs) {
      assertNoLeak(output, [text, text.slice(4), ...renderings(seed)], "rendering");
    }
    assert.equal(String(token), "[AgentToken redacted]");
    assert.equal(JSON.stringify(token), '"[AgentToken redacted]"');
  });

  it("deriveKeys follows FORMATS.md: HKDF-SHA256 auth key, 32-byte X25519 public key", async () => {
    const seed = randomBytes(32);
    const id = randomBytes(16);
    const keys = await new AgentToken(id, seed, randomBytes(16)).deriveKeys();
    const expected = hkdfSync(
      "sha256",
      seed,
      utf8("keyhole/v1"),
      concatBytes(utf8("keyhole/v1/token-auth"), id),
      32,
    );
    assert.equal(toHex(keys.authKey), Buffer.from(expected).toString("hex"));
    assert.equal(keys.recipient.publicKey.length, 32);
    const again = await new AgentToken(id, seed, randomBytes(16)).deriveKeys();
    assert.deepEqual(again.recipient.publicKey, keys.recipient.publicKey);
  });

  it("the token id is part of the derivation: same seed, other id, other keys", async () => {
    const seed = randomBytes(32);
    const a = await new AgentToken(randomBytes(16), seed, randomBytes(16)).deriveKeys();
    const b = await new AgentToken(randomBytes(16), seed, randomBytes(16)).deriveKeys();
    assert.notDeepEqual(a.authKey, b.authKey);
    assert.notDeepEqual(a.recipient.publicKey, b.recipient.publicKey);
    assert.notDeepEqual(a.authKey, a.recipient.publicKey);
  });

  it("destroy overwrites the seed, so the token derives other keys afterwards", async () => {
    const token = AgentToken.generate(randomBytes(16));
    const before = await token.deriveKeys();
    token.destroy();
    const after = await token.deriveKeys();
    assert.notDeepEqual(after.authKey, before.authKey);
    assert.equal(token.encode().slice(26, 68), "A".repeat(42));
  });

  it("the Authorization header round-trips token id and auth key", () => {
    const id = randomBytes(16);
    const key = randomBytes(32);
    const header = formatAgentAuthorization(id, key);
    assert.equal(header, `Keyhole ${encodeBase64url(id)}.${encodeBase64url(key)}`);
    assert.deepEqual(parseAgentAuthorization(header), { tokenId: id, authKey: key });
  });

  it("parseAgentAuthorization returns null for anything but Keyhole <16 bytes>.<32 bytes>", () => {
    const id = encodeBase64url(randomBytes(16));
    const key = encodeBase64url(randomBytes(32));
    for (const header of [
      `Bearer ${id}.${key}`,
      `keyhole ${id}.${key}`,
      `Keyhole ${id}`,
      `Keyhole ${id}.${key}.x`,
      `Keyhole ${id}.${encodeBase64url(randomBytes(31))}`,
      `Keyhole ${encodeBase64url(randomBytes(15))}.${key}`,
      `Keyhole ${id}=.${key}`,
      `Keyhole  ${id}.${key}`,
      `Keyhole-Owner ${id}.${key}`,
      "",
    ]) {
      assert.equal(parseAgentAuthorization(header), null, header.slice(0, 14));
    }
  });

  it("verifierMessage is 'keyhole/v1/verifier' ‖ token_id ‖ auth_key", () => {
    const id = randomBytes(16);
    const key = randomBytes(32);
    assert.deepEqual(verifierMessage(id, key), concatBytes(utf8("keyhole/v1/verifier"), id, key));
  });

  it("decodeTokenId accepts exactly 16 bytes of canonical base64url", () => {
    const id = randomBytes(16);
    assert.deepEqual(decodeTokenId(encodeBase64url(id)), id);
    for (const bad of [
      encodeBase64url(randomBytes(15)),
      encodeBase64url(randomBytes(17)),
      "AAAA=",
      "",
    ]) {
      assert.throws(
        () => decodeTokenId(bad),
        (e) => isKeyholeError(e) && e.code === "bad_request",
      );
    }
  });
});
