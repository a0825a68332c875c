// Known answers for our HPKE suite (SECURITY-TESTS #9): RFC 9180 base mode,
// DHKEM(X25519, HKDF-SHA256) 0x0020 / HKDF-SHA256 0x0001 / AES-256-GCM 0x0002. RFC 9180
// Appendix A prints X25519 only with AES-128-GCM and ChaCha20-Poly1305; this entry comes from
// the CFRG test-vectors.json that accompanies the RFC (see test/vectors/README.md).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  createCipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
} from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";

interface HpkeVector {
  readonly source: string;
  readonly mode: number;
  readonly kem_id: number;
  readonly kdf_id: number;
  readonly aead_id: number;
  readonly info: string;
  readonly ikmR: string;
  readonly ikmE: string;
  readonly skRm: string;
  readonly pkRm: string;
  readonly skEm: string;
  readonly pkEm: string;
  readonly enc: string;
  readonly shared_secret: string;
  readonly key_schedule_context: string;
  readonly secret: string;
  readonly key: string;
  readonly base_nonce: string;
  readonly exporter_secret: string;
  readonly encryptions: readonly {
    readonly seq: number;
    readonly aad: string;
    readonly nonce: string;
    readonly pt: string;
    readonly ct: string;
  }[];
  readonly exports: readonly {
    readonly exporter_context: string;
    readonly L: number;
    readonly exported_value: string;
  }[];
}

// From dist/kat/ (the compiled location of this file) up to the package root.
const VECTOR_URL = new URL(
  "../../test/vectors/kat/hpke-base-x25519-sha256-aes256gcm.json",
  import.meta.url,
);
const v = JSON.parse(readFileSync(VECTOR_URL, "utf8")) as HpkeVector;

/** Strict hex decoding: a mistyped vector must fail loudly, not decode to fewer bytes. */
function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new Error(`not lowercase hex: ${hex.slice(0, 16)}`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString("hex");
}

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

test("the HPKE vector file is the base-mode entry for suite 0x0020/0x0001/0x0002", () => {
  assert.match(v.source, /test-vectors\.json/);
  assert.deepEqual([v.mode, v.kem_id, v.kdf_id, v.aead_id], [0, 0x0020, 0x0001, 0x0002]);
  assert.deepEqual([suite.kem.id, suite.kdf.id, suite.aead.id], [0x0020, 0x0001, 0x0002]);
  assert.ok(v.encryptions.length >= 2);
});

test("HPKE DeriveKeyPair(ikmR) gives the RFC 9180 recipient key pair skRm/pkRm", async () => {
  const pair = await suite.kem.deriveKeyPair(fromHex(v.ikmR));
  assert.equal(toHex(await suite.kem.serializePrivateKey(pair.privateKey)), v.skRm);
  assert.equal(toHex(await suite.kem.serializePublicKey(pair.publicKey)), v.pkRm);
});

test("HPKE DeriveKeyPair(ikmE) gives the RFC 9180 ephemeral key pair, whose public key is enc", async () => {
  const pair = await suite.kem.deriveKeyPair(fromHex(v.ikmE));
  assert.equal(toHex(await suite.kem.serializePrivateKey(pair.privateKey)), v.skEm);
  assert.equal(toHex(await suite.kem.serializePublicKey(pair.publicKey)), v.pkEm);
  assert.equal(v.enc, v.pkEm, "for DHKEM(X25519) enc is SerializePublicKey(pkE)");
});

test("an HPKE recipient context from (skRm, enc, info) opens each RFC 9180 ciphertext in sequence", async () => {
  // The recipient key is imported from the serialized skRm, not derived, so both routes to a
  // private key are covered (the derived one by the test above).
  const recipientKey = await suite.kem.deserializePrivateKey(fromHex(v.skRm));
  const recipient = await suite.createRecipientContext({
    recipientKey,
    enc: fromHex(v.enc),
    info: fromHex(v.info),
  });
  // Contexts are stateful: the nth open uses sequence number n (RFC 9180 §5.2), so the
  // encryptions are opened in the order the vector lists them, starting at 0.
  for (const [i, e] of v.encryptions.entries()) {
    assert.equal(e.seq, i);
    const pt = await recipient.open(fromHex(e.ct), fromHex(e.aad));
    assert.equal(toHex(pt), e.pt, `encryption ${e.seq}`);
  }
});

test("an HPKE sender context with the RFC's ephemeral key seals to the exact enc and RFC 9180 ciphertexts", async () => {
  // @hpke/core's SenderContextParams takes `ekm` (the ephemeral key pair, or the ikm it is
  // derived from) for exactly this purpose: it is documented as test-only, and production
  // code never passes it. With it, encapsulation is deterministic and every byte can be compared.
  const recipient = await suite.kem.deriveKeyPair(fromHex(v.ikmR));
  const ephemeral = await suite.kem.deriveKeyPair(fromHex(v.ikmE));
  const sender = await suite.createSenderContext({
    recipientPublicKey: recipient.publicKey,
    info: fromHex(v.info),
    ekm: ephemeral,
  });
  assert.equal(toHex(sender.enc), v.enc);
  for (const e of v.encryptions) {
    const ct = await sender.seal(fromHex(e.pt), fromHex(e.aad));
    assert.equal(toHex(ct), e.ct, `encryption ${e.seq}`);
  }
});

test("HPKE secret export gives the RFC 9180 exported values on both sides", async () => {
  const recipientPair = await suite.kem.deriveKeyPair(fromHex(v.ikmR));
  const sender = await suite.createSenderContext({
    recipientPublicKey: recipientPair.publicKey,
    info: fromHex(v.info),
    ekm: fromHex(v.ikmE),
  });
  const recipient = await suite.createRecipientContext({
    recipientKey: recipientPair,
    enc: fromHex(v.enc),
    info: fromHex(v.info),
  });
  for (const x of v.exports) {
    assert.equal(toHex(await sender.export(fromHex(x.exporter_context), x.L)), x.exported_value);
    assert.equal(toHex(await recipient.export(fromHex(x.exporter_context), x.L)), x.exported_value);
  }
});

test("an HPKE recipient context refuses the RFC ciphertext with a flipped bit, other AAD or other info", async () => {
  const recipientKey = await suite.kem.deserializePrivateKey(fromHex(v.skRm));
  const first = v.encryptions[0];
  assert.ok(first);
  const open = async (info: string, ct: Uint8Array, aad: string): Promise<ArrayBuffer> => {
    const ctx = await suite.createRecipientContext({
      recipientKey,
      enc: fromHex(v.enc),
      info: fromHex(info),
    });
    return ctx.open(ct, fromHex(aad));
  };
  const flipped = fromHex(first.ct);
  flipped[0] = (flipped[0] ?? 0) ^ 0x01;
  await assert.rejects(open(v.info, flipped, first.aad), { name: "OpenError" });
  await assert.rejects(open(v.info, fromHex(first.ct), `${first.aad}00`), { name: "OpenError" });
  await assert.rejects(open(`${v.info}00`, fromHex(first.ct), first.aad), { name: "OpenError" });
  // Control: the untouched inputs do open, so the refusals above are about the changes.
  assert.equal(toHex(await open(v.info, fromHex(first.ct), first.aad)), first.pt);
});

test("HPKE refuses to encapsulate to, or decapsulate from, the all-zero (low-order) X25519 key", async () => {
  // RFC 9180 §7.1.4: DH() must abort with ValidationError when the X25519 output is all zeros.
  const zero = await suite.kem.deserializePublicKey(new Uint8Array(32));
  await assert.rejects(suite.createSenderContext({ recipientPublicKey: zero }), {
    name: "EncapError",
  });
  const recipientKey = await suite.kem.deriveKeyPair(fromHex(v.ikmR));
  await assert.rejects(suite.createRecipientContext({ recipientKey, enc: new Uint8Array(32) }), {
    name: "DecapError",
  });
});

// The rest recomputes the same vector from its definition (RFC 9180 §4.1, §5.1, §5.2) with
// node:crypto alone: a second, independent implementation, and a check that the intermediate
// values in the vector file (shared_secret, key, base_nonce, ...) are the ones the RFC defines.

const X25519_PKCS8_PREFIX = fromHex("302e020100300506032b656e04220420");
const X25519_SPKI_PREFIX = fromHex("302a300506032b656e032100");

function i2osp2(n: number): Uint8Array {
  return Uint8Array.of((n >> 8) & 0xff, n & 0xff);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "utf8"));

/** HKDF-Extract (RFC 5869 §2.2) with SHA-256. */
function extract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", salt).update(ikm).digest());
}

/** HKDF-Expand (RFC 5869 §2.3) with SHA-256. */
function expand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const blocks: Uint8Array[] = [];
  let previous = new Uint8Array(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    previous = new Uint8Array(
      createHmac("sha256", prk).update(previous).update(info).update(Uint8Array.of(i)).digest(),
    );
    blocks.push(previous);
  }
  return concat(...blocks).subarray(0, length);
}

/** RFC 9180 §4: LabeledExtract and LabeledExpand, bound to a suite_id. */
function labeled(suiteId: Uint8Array) {
  const prefix = concat(utf8("HPKE-v1"), suiteId);
  return {
    extract: (salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array =>
      extract(salt, concat(prefix, utf8(label), ikm)),
    expand: (prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array =>
      expand(prk, concat(i2osp2(length), prefix, utf8(label), info), length),
  };
}

test("RFC 9180 DHKEM and key schedule recomputed with node:crypto give the vector's secrets, key and nonce", () => {
  const empty = new Uint8Array(0);
  // §4.1 DHKEM(X25519, HKDF-SHA256): dh = DH(skE, pkR); kem_context = enc || pkRm.
  const dh = new Uint8Array(
    diffieHellman({
      privateKey: createPrivateKey({
        key: Buffer.from(concat(X25519_PKCS8_PREFIX, fromHex(v.skEm))),
        format: "der",
        type: "pkcs8",
      }),
      publicKey: createPublicKey({
        key: Buffer.from(concat(X25519_SPKI_PREFIX, fromHex(v.pkRm))),
        format: "der",
        type: "spki",
      }),
    }),
  );
  const kem = labeled(concat(utf8("KEM"), i2osp2(v.kem_id)));
  const eaePrk = kem.extract(empty, "eae_prk", dh);
  const kemContext = concat(fromHex(v.enc), fromHex(v.pkRm));
  const sharedSecret = kem.expand(eaePrk, "shared_secret", kemContext, 32);
  assert.equal(toHex(sharedSecret), v.shared_secret);

  // §5.1 KeyScheduleS/R in mode_base (psk and psk_id empty).
  const hpke = labeled(concat(utf8("HPKE"), i2osp2(v.kem_id), i2osp2(v.kdf_id), i2osp2(v.aead_id)));
  const pskIdHash = hpke.extract(empty, "psk_id_hash", empty);
  const infoHash = hpke.extract(empty, "info_hash", fromHex(v.info));
  const context = concat(Uint8Array.of(v.mode), pskIdHash, infoHash);
  assert.equal(toHex(context), v.key_schedule_context);
  const secret = hpke.extract(sharedSecret, "secret", empty);
  assert.equal(toHex(secret), v.secret);
  const key = hpke.expand(secret, "key", context, 32);
  const baseNonce = hpke.expand(secret, "base_nonce", context, 12);
  assert.equal(toHex(key), v.key);
  assert.equal(toHex(baseNonce), v.base_nonce);
  assert.equal(toHex(hpke.expand(secret, "exp", context, 32)), v.exporter_secret);

  // §5.2 ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn), then AES-256-GCM Seal.
  for (const e of v.encryptions) {
    const nonce = baseNonce.slice();
    for (let i = 11, seq = e.seq; seq > 0; i--, seq = Math.floor(seq / 256)) {
      nonce[i] = (nonce[i] ?? 0) ^ (seq & 0xff);
    }
    assert.equal(toHex(nonce), e.nonce);
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(fromHex(e.aad));
    const ct = concat(cipher.update(fromHex(e.pt)), cipher.final(), cipher.getAuthTag());
    assert.equal(toHex(ct), e.ct, `encryption ${e.seq}`);
  }
});
