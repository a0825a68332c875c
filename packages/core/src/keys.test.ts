import assert from "node:assert/strict";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  sign as nodeSign,
} from "node:crypto";
import { describe, it } from "node:test";
import { rejectsWith } from "./fixtures.test.helper.js";
import {
  fingerprint,
  generateSigningSeed,
  hkdfSha256,
  importSigningKey,
  label,
  randomBytes,
  sha256,
  sign,
  utf8,
  verify,
} from "./index.js";

function nodeEd25519(seed: Uint8Array) {
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return { privateKey, publicKey: new Uint8Array(spki.subarray(spki.length - 32)) };
}

describe("keys", () => {
  it("sha256 and fingerprint agree with node:crypto; fpr is the first 16 bytes", async () => {
    const data = randomBytes(100);
    const digest = new Uint8Array(createHash("sha256").update(data).digest());
    assert.deepEqual(await sha256(data), digest);
    assert.deepEqual(await fingerprint(data), digest.subarray(0, 16));
  });

  it("hkdfSha256 agrees with node:crypto hkdfSync", async () => {
    const ikm = randomBytes(32);
    const salt = utf8("keyhole/v1");
    const info = label("token-auth");
    const expected = new Uint8Array(hkdfSync("sha256", ikm, salt, info, 32));
    assert.deepEqual(await hkdfSha256(ikm, salt, info, 32), expected);
  });

  it("importSigningKey derives the same public key and signatures as node:crypto", async () => {
    const seed = generateSigningSeed();
    assert.equal(seed.length, 32);
    const key = await importSigningKey(seed);
    const reference = nodeEd25519(seed);
    assert.deepEqual(key.publicKey, reference.publicKey);
    const message = utf8("keyhole");
    const signature = await sign(key, message);
    assert.deepEqual(signature, new Uint8Array(nodeSign(null, message, reference.privateKey)));
    assert.equal(await verify(key.publicKey, message, signature), true);
  });

  it("the imported private key cannot be exported", async () => {
    const key = await importSigningKey(generateSigningSeed());
    assert.equal(key.privateKey.extractable, false);
    await assert.rejects(globalThis.crypto.subtle.exportKey("pkcs8", key.privateKey));
  });

  it("importSigningKey refuses a seed that is not 32 bytes", async () => {
    await rejectsWith(() => importSigningKey(new Uint8Array(31)), "invalid_envelope");
    await rejectsWith(() => importSigningKey(new Uint8Array(33)), "invalid_envelope");
  });

  it("verify is false, never an exception, for bad keys, signatures and messages", async () => {
    const key = await importSigningKey(generateSigningSeed());
    const message = utf8("m");
    const signature = await sign(key, message);
    assert.equal(await verify(key.publicKey, utf8("n"), signature), false);
    assert.equal(await verify(key.publicKey.subarray(0, 31), message, signature), false);
    assert.equal(await verify(key.publicKey, message, signature.subarray(0, 63)), false);
    assert.equal(await verify(new Uint8Array(32), message, signature), false);
    assert.equal(await verify(key.publicKey, message, new Uint8Array(64).fill(0xff)), false);
  });

  it("labels are 'keyhole/v1/' + name", () => {
    assert.deepEqual(label("grant"), utf8("keyhole/v1/grant"));
  });
});
