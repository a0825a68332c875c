// Known answers for our HPKE (SECURITY-TESTS #9): RFC 9180 base mode,
// DHKEM(X25519, HKDF-SHA256) 0x0020 / HKDF-SHA256 0x0001 / AES-256-GCM 0x0002, as implemented in
// hpke.ts, hpke-kem.ts and hpke-kdf.ts. RFC 9180 Appendix A prints X25519 only with AES-128-GCM
// and ChaCha20-Poly1305; this entry comes from the CFRG test-vectors.json that accompanies the
// RFC (see test/vectors/README.md). The KEM alone is also checked against the values A.1.1 prints
// (see RFC_9180_A_1_1 below). A second implementation on node:crypto
// (hpke-reference.test.helper.ts) checks the vector file itself and cross-checks random cases.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { isKeyholeError } from "../errors.js";
import {
  deriveRecipientKeyPair,
  hpkeOpen,
  hpkeSeal,
  hpkeSealWithEphemeralIkmForTesting,
  keyScheduleForTesting,
  type RecipientKeyPair,
} from "../hpke.js";
import { decap, deriveX25519SecretKeyForTesting, encap } from "../hpke-kem.js";
import {
  referenceAeadSeal,
  referenceDeriveKeyPair,
  referenceDh,
  referenceKeySchedule,
  referenceNonce,
  referenceOpen,
  referenceSeal,
  referenceSharedSecret,
} from "../hpke-reference.test.helper.js";
import type { WebCryptoKey } from "../keys.js";

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
}

interface LowOrderPoints {
  readonly lowOrderPublicKeys: readonly { readonly name: string; readonly u: string }[];
}

// From dist/kat/ (the compiled location of this file) up to the package root.
function readVector<T>(name: string): T {
  const url = new URL(`../../test/vectors/kat/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

const v = readVector<HpkeVector>("hpke-base-x25519-sha256-aes256gcm.json");
const { lowOrderPublicKeys } = readVector<LowOrderPoints>("x25519.json");
const first = v.encryptions[0] as HpkeVector["encryptions"][number];

/** Strict hex decoding: a mistyped vector must fail loudly, not decode to fewer bytes. */
function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new Error(`not lowercase hex: ${hex.slice(0, 16)}`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** A copy of `bytes` with bit `bit` of byte `index` flipped. */
function flipBit(bytes: Uint8Array, index: number, bit = index % 8): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[index] = (out[index] as number) ^ (1 << bit);
  return out;
}

const isDecryptFailed = (error: unknown) =>
  isKeyholeError(error) && error.code === "decrypt_failed";
const isInvalidEnvelope = (error: unknown) =>
  isKeyholeError(error) && error.code === "invalid_envelope";

/** The vector's recipient, as production code gets it: derived from ikmR (once, then reused). */
let recipientPair: Promise<RecipientKeyPair> | undefined;
const recipient = (): Promise<RecipientKeyPair> =>
  (recipientPair ??= deriveRecipientKeyPair(fromHex(v.ikmR)));

const openFirst = async (
  parts: { enc?: Uint8Array; info?: Uint8Array; aad?: Uint8Array; ct?: Uint8Array } = {},
): Promise<Uint8Array> =>
  hpkeOpen(
    await recipient(),
    parts.enc ?? fromHex(v.enc),
    parts.info ?? fromHex(v.info),
    parts.aad ?? fromHex(first.aad),
    parts.ct ?? fromHex(first.ct),
  );

test("the HPKE vector file is the base-mode entry for suite 0x0020/0x0001/0x0002", () => {
  assert.match(v.source, /test-vectors\.json/);
  assert.deepEqual([v.mode, v.kem_id, v.kdf_id, v.aead_id], [0, 0x0020, 0x0001, 0x0002]);
  assert.equal(first.seq, 0);
  assert.equal(v.enc, v.pkEm, "for DHKEM(X25519) enc is SerializePublicKey(pkE)");
});

test("HPKE DeriveKeyPair(ikmR) gives the RFC 9180 recipient key pair skRm/pkRm", async () => {
  assert.equal(toHex(await deriveX25519SecretKeyForTesting(fromHex(v.ikmR))), v.skRm);
  assert.equal(toHex((await deriveRecipientKeyPair(fromHex(v.ikmR))).publicKey), v.pkRm);
});

test("HPKE DeriveKeyPair(ikmE) gives the RFC 9180 ephemeral key pair skEm/pkEm", async () => {
  assert.equal(toHex(await deriveX25519SecretKeyForTesting(fromHex(v.ikmE))), v.skEm);
  assert.equal(toHex((await deriveRecipientKeyPair(fromHex(v.ikmE))).publicKey), v.pkEm);
});

/**
 * RFC 9180 Appendix A.1.1, "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM", Base Setup
 * Information: values the RFC itself prints, checked byte for byte against Go's transcription of
 * Appendix A (src/crypto/internal/hpke/testdata/rfc9180-vectors.json, entry "DHKEM(X25519,
 * HKDF-SHA256), HKDF-SHA256, AES-128-GCM", mode 0). Only the KEM's part is used: DeriveKeyPair,
 * Encap and Decap run under the KEM's own suite_id, "KEM" ‖ I2OSP(0x0020, 2) (§4.1), which names
 * no KDF and no AEAD, so these values hold for our AES-256-GCM suite too. The key schedule's
 * values in A.1.1 (key_schedule_context onwards) do not: its suite_id carries the AEAD id.
 */
const RFC_9180_A_1_1 = {
  ikmE: "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234",
  pkEm: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
  skEm: "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
  ikmR: "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
  pkRm: "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
  skRm: "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
  enc: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
  shared_secret: "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
} as const;

test("DHKEM(X25519) gives the key pairs, enc and shared_secret printed in RFC 9180 A.1.1", async () => {
  const a = RFC_9180_A_1_1;
  assert.equal(toHex(await deriveX25519SecretKeyForTesting(fromHex(a.ikmE))), a.skEm);
  assert.equal(toHex(await deriveX25519SecretKeyForTesting(fromHex(a.ikmR))), a.skRm);
  assert.equal(toHex((await deriveRecipientKeyPair(fromHex(a.ikmE))).publicKey), a.pkEm);
  const recipientA = await deriveRecipientKeyPair(fromHex(a.ikmR));
  assert.equal(toHex(recipientA.publicKey), a.pkRm);
  const encapsulated = await encap(fromHex(a.pkRm), fromHex(a.ikmE));
  assert.equal(toHex(encapsulated.enc), a.enc);
  assert.equal(toHex(encapsulated.sharedSecret), a.shared_secret);
  assert.equal(toHex(await decap(fromHex(a.enc), recipientA)), a.shared_secret);
  // The node:crypto reference agrees with the printed values too.
  const dh = referenceDh(fromHex(a.skEm), fromHex(a.pkRm));
  assert.equal(toHex(referenceSharedSecret(dh, fromHex(a.enc), fromHex(a.pkRm))), a.shared_secret);
  assert.equal(toHex(referenceDeriveKeyPair(fromHex(a.ikmR)).pk), a.pkRm);
});

test("HPKE DeriveKeyPair refuses ikm shorter than Nsk = 32 bytes and takes 32 bytes or more", async () => {
  // RFC 9180 §4: ikm SHOULD carry at least Nsk bytes of entropy; fewer bytes cannot.
  for (const length of [0, 1, 16, 31]) {
    await assert.rejects(
      deriveRecipientKeyPair(new Uint8Array(length).fill(0xa5)),
      isInvalidEnvelope,
      `${length} bytes`,
    );
  }
  for (const length of [32, 33, 64]) {
    const ikm = new Uint8Array(length).fill(0xa5);
    const pair = await deriveRecipientKeyPair(ikm);
    assert.equal(toHex(pair.publicKey), toHex(referenceDeriveKeyPair(ikm).pk), `${length} bytes`);
  }
});

test("a derived HPKE private key is a non-extractable WebCrypto key", async () => {
  const { privateKey } = await recipient();
  assert.equal(privateKey.extractable, false);
  assert.deepEqual(privateKey.usages, ["deriveBits"]);
  await assert.rejects(globalThis.crypto.subtle.exportKey("pkcs8", privateKey));
  await assert.rejects(globalThis.crypto.subtle.exportKey("jwk", privateKey));
});

test("the HPKE key schedule turns the vector's shared_secret and info into its key and base_nonce", async () => {
  const { key, baseNonce } = await keyScheduleForTesting(fromHex(v.shared_secret), fromHex(v.info));
  assert.equal(toHex(key), v.key);
  assert.equal(toHex(baseNonce), v.base_nonce);
  assert.equal(first.nonce, v.base_nonce, "single-shot: the seq-0 nonce is base_nonce itself");
});

test("HPKE seal with the vector's ikmE gives its enc and seq-0 ciphertext byte for byte", async () => {
  const sealed = await hpkeSealWithEphemeralIkmForTesting(
    fromHex(v.pkRm),
    fromHex(v.info),
    fromHex(first.aad),
    fromHex(first.pt),
    fromHex(v.ikmE),
  );
  assert.equal(toHex(sealed.enc), v.enc);
  assert.equal(toHex(sealed.ciphertext), first.ct);
});

test("HPKE open with the key pair derived from ikmR gives the vector's seq-0 plaintext", async () => {
  assert.equal(toHex(await openFirst()), first.pt);
});

test("HPKE seal and open leave their inputs as they were", async () => {
  const inputs = [v.pkRm, v.info, first.aad, first.pt, v.ikmE].map(fromHex);
  const [pkR, info, aad, pt, ikmE] = inputs as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const sealed = await hpkeSealWithEphemeralIkmForTesting(pkR, info, aad, pt, ikmE);
  const enc = Uint8Array.from(sealed.enc);
  const ct = Uint8Array.from(sealed.ciphertext);
  await hpkeOpen(await recipient(), enc, info, aad, ct);
  assert.deepEqual([...inputs, enc, ct].map(toHex), [
    v.pkRm,
    v.info,
    first.aad,
    first.pt,
    v.ikmE,
    v.enc,
    first.ct,
  ]);
});

test("HPKE open refuses the vector with any one bit flipped in enc, ciphertext, AAD or info", async () => {
  const parts = {
    enc: fromHex(v.enc),
    ct: fromHex(first.ct),
    aad: fromHex(first.aad),
    info: fromHex(v.info),
  };
  let refused = 0;
  for (const [name, bytes] of Object.entries(parts)) {
    for (let i = 0; i < bytes.length; i++) {
      // One bit per byte, walking the bit position too, so every byte and every position is hit.
      await assert.rejects(
        openFirst({ [name]: flipBit(bytes, i) }),
        isDecryptFailed,
        `${name}[${i}]`,
      );
      refused++;
    }
  }
  assert.equal(refused, 32 + first.ct.length / 2 + first.aad.length / 2 + v.info.length / 2);
  // Bit 255 of enc is ignored by X25519 (RFC 7748 §5), but enc is part of kem_context, so the
  // shared secret, and with it the key, still changes.
  await assert.rejects(openFirst({ enc: flipBit(parts.enc, 31, 7) }), isDecryptFailed);
});

test("HPKE open refuses a truncated, extended or empty enc, ciphertext, AAD or info", async () => {
  const cases: Record<string, Uint8Array>[] = [
    { enc: fromHex(v.enc).subarray(0, 31) },
    { enc: fromHex(`${v.enc}00`) },
    { enc: new Uint8Array(0) },
    { ct: fromHex(first.ct).subarray(0, first.ct.length / 2 - 1) },
    { ct: fromHex(`${first.ct}00`) },
    { ct: fromHex(first.ct).subarray(0, 15) },
    { ct: new Uint8Array(0) },
    { aad: fromHex(`${first.aad}00`) },
    { aad: new Uint8Array(0) },
    { info: fromHex(`${v.info}00`) },
    { info: new Uint8Array(0) },
  ];
  for (const parts of cases) await assert.rejects(openFirst(parts), isDecryptFailed);
});

test("HPKE open with another recipient's key is decrypt_failed", async () => {
  const other = await deriveRecipientKeyPair(fromHex(v.ikmE));
  await assert.rejects(
    hpkeOpen(other, fromHex(v.enc), fromHex(v.info), fromHex(first.aad), fromHex(first.ct)),
    isDecryptFailed,
  );
});

test("HPKE open refuses the all-zero and every other low-order X25519 point as enc", async () => {
  assert.equal(lowOrderPublicKeys.length, 7);
  for (const { name, u } of lowOrderPublicKeys) {
    await assert.rejects(openFirst({ enc: fromHex(u) }), isDecryptFailed, name);
  }
});

test("HPKE seal refuses to encapsulate to a low-order or wrong-length public key", async () => {
  const seal = (pk: Uint8Array) =>
    hpkeSeal(pk, fromHex(v.info), fromHex(first.aad), fromHex(first.pt));
  for (const { name, u } of lowOrderPublicKeys) {
    await assert.rejects(seal(fromHex(u)), isInvalidEnvelope, name);
  }
  await assert.rejects(seal(fromHex(v.pkRm).subarray(0, 31)), isInvalidEnvelope);
  await assert.rejects(seal(fromHex(`${v.pkRm}00`)), isInvalidEnvelope);
});

/**
 * Runs `fn` with WebCrypto's X25519 answering `answer` wherever its real answer is not `keep`
 * (so X25519(sk, 9), a public key, can still be computed for real). OpenSSL refuses the all-zero
 * result itself, so without this the tests could not show that our own check (RFC 9180 §7.1.4)
 * would catch it on a runtime that does not, nor that it lets every other output through.
 */
async function withDhOutput<T>(
  keep: Uint8Array,
  answer: Uint8Array,
  fn: () => Promise<T>,
): Promise<T> {
  const subtle = globalThis.crypto.subtle;
  const deriveBits = subtle.deriveBits.bind(subtle);
  // Only X25519 goes through deriveBits in hpke*.ts (HKDF is built on HMAC sign).
  const patched = async (
    algorithm: { name: "X25519"; public: WebCryptoKey },
    baseKey: WebCryptoKey,
    length: number,
  ): Promise<ArrayBuffer> => {
    const real = await deriveBits(algorithm, baseKey, length);
    return toHex(new Uint8Array(real)) === toHex(keep) ? real : Uint8Array.from(answer).buffer;
  };
  Object.defineProperty(subtle, "deriveBits", { value: patched, configurable: true });
  try {
    return await fn();
  } finally {
    Reflect.deleteProperty(subtle, "deriveBits");
    assert.equal(subtle.deriveBits, Object.getPrototypeOf(subtle).deriveBits);
  }
}

test("HPKE open refuses an all-zero X25519 shared secret even if the platform returned one", async () => {
  const pair = await recipient();
  // A ciphertext that opens if DH(skR, enc) is taken to be all zeros: what the recipient would
  // accept if it did not check.
  const enc = fromHex(v.enc);
  const zeros = new Uint8Array(32);
  const { key, baseNonce } = referenceKeySchedule(
    referenceSharedSecret(zeros, enc, pair.publicKey),
    fromHex(v.info),
  );
  const ct = referenceAeadSeal(key, baseNonce, fromHex(first.aad), fromHex(first.pt));
  await withDhOutput(pair.publicKey, zeros, async () => {
    await assert.rejects(
      hpkeOpen(pair, enc, fromHex(v.info), fromHex(first.aad), ct),
      isDecryptFailed,
    );
  });
});

test("HPKE seal refuses an all-zero X25519 shared secret even if the platform returned one", async () => {
  // The ephemeral public key (X25519(skE, 9)) is still computed for real; only DH(skE, pkR) is zero.
  await withDhOutput(fromHex(v.pkEm), new Uint8Array(32), async () => {
    await assert.rejects(
      hpkeSealWithEphemeralIkmForTesting(
        fromHex(v.pkRm),
        fromHex(v.info),
        fromHex(first.aad),
        fromHex(first.pt),
        fromHex(v.ikmE),
      ),
      isInvalidEnvelope,
    );
  });
});

test("HPKE seal and open refuse only the all-zero X25519 output: one nonzero byte anywhere passes", async () => {
  const [pkR, info, aad, pt, ikmE, enc] = [v.pkRm, v.info, first.aad, first.pt, v.ikmE, v.enc].map(
    fromHex,
  ) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const pair = await recipient();
  const oneNonzero = (index: number, value: number) => {
    const dh = new Uint8Array(32);
    dh[index] = value;
    return dh;
  };
  // 00…01, 01 00…00 and a middle byte: a check that reads only some of the 32 bytes (the first,
  // the last, or either end) refuses one of these, and a seal that should succeed fails.
  for (const dh of [oneNonzero(31, 0x01), oneNonzero(0, 0x01), oneNonzero(15, 0x80)]) {
    const { key, baseNonce } = referenceKeySchedule(referenceSharedSecret(dh, enc, pkR), info);
    const expected = referenceAeadSeal(key, baseNonce, aad, pt);
    // The ephemeral public key (X25519(skE, 9)) is computed for real; DH(skE, pkR) is `dh`.
    const sealed = await withDhOutput(fromHex(v.pkEm), dh, () =>
      hpkeSealWithEphemeralIkmForTesting(pkR, info, aad, pt, ikmE),
    );
    assert.equal(toHex(sealed.enc), v.enc, toHex(dh));
    assert.equal(toHex(sealed.ciphertext), toHex(expected), toHex(dh));
    const opened = await withDhOutput(pair.publicKey, dh, () =>
      hpkeOpen(pair, enc, info, aad, expected),
    );
    assert.equal(toHex(opened), first.pt, toHex(dh));
  }
  await withDhOutput(fromHex(v.pkEm), new Uint8Array(32), async () => {
    await assert.rejects(
      hpkeSealWithEphemeralIkmForTesting(pkR, info, aad, pt, ikmE),
      isInvalidEnvelope,
    );
  });
});

test("hpkeSeal draws a fresh ephemeral key for every call: seals to one key never share an enc", async () => {
  const [pkR, info, aad, pt] = [v.pkRm, v.info, first.aad, first.pt].map(fromHex) as [
    Uint8Array,
    Uint8Array,
    Uint8Array,
    Uint8Array,
  ];
  const sealed = [];
  for (let i = 0; i < 4; i++) sealed.push(await hpkeSeal(pkR, info, aad, pt));
  assert.equal(new Set(sealed.map(({ enc }) => toHex(enc))).size, sealed.length);
  assert.equal(new Set(sealed.map(({ ciphertext }) => toHex(ciphertext))).size, sealed.length);
  // Each still opens: fresh, not broken.
  for (const { enc, ciphertext } of sealed) {
    assert.equal(toHex(await hpkeOpen(await recipient(), enc, info, aad, ciphertext)), first.pt);
  }
});

test("HPKE seal and open agree with an independent node:crypto implementation on random inputs", async () => {
  for (let i = 0; i < 8; i++) {
    const random = (n: number) =>
      new Uint8Array(globalThis.crypto.getRandomValues(new Uint8Array(n)));
    const ikmR = random(32);
    const info = random(i * 5);
    const aad = random(i * 11);
    const pt = random(i === 0 ? 0 : 32 + i);
    const reference = referenceDeriveKeyPair(ikmR);
    const pair = await deriveRecipientKeyPair(ikmR);
    assert.equal(toHex(pair.publicKey), toHex(reference.pk));
    // Ours seals (random ephemeral), the reference opens.
    const ours = await hpkeSeal(pair.publicKey, info, aad, pt);
    assert.equal(ours.ciphertext.length, pt.length + 16);
    assert.equal(
      toHex(referenceOpen(reference.sk, ours.enc, info, aad, ours.ciphertext)),
      toHex(pt),
    );
    // The reference seals, ours opens.
    const theirs = referenceSeal(pair.publicKey, info, aad, pt, random(32));
    assert.equal(toHex(await hpkeOpen(pair, theirs.enc, info, aad, theirs.ct)), toHex(pt));
  }
});

test("the vector's secrets, key, nonces and ciphertexts recomputed with node:crypto match the file", () => {
  // Checks the vector file against the RFC's definitions, independently of hpke*.ts, including
  // what single-shot never uses (sequence numbers 1 and 2, exporter_secret).
  const recipientKeys = referenceDeriveKeyPair(fromHex(v.ikmR));
  const ephemeralKeys = referenceDeriveKeyPair(fromHex(v.ikmE));
  assert.deepEqual(
    [recipientKeys.sk, recipientKeys.pk, ephemeralKeys.sk, ephemeralKeys.pk].map(toHex),
    [v.skRm, v.pkRm, v.skEm, v.pkEm],
  );
  const dh = referenceDh(fromHex(v.skEm), fromHex(v.pkRm));
  assert.equal(toHex(referenceDh(fromHex(v.skRm), fromHex(v.pkEm))), toHex(dh));
  const sharedSecret = referenceSharedSecret(dh, fromHex(v.enc), fromHex(v.pkRm));
  assert.equal(toHex(sharedSecret), v.shared_secret);
  const schedule = referenceKeySchedule(sharedSecret, fromHex(v.info));
  assert.equal(toHex(schedule.context), v.key_schedule_context);
  assert.equal(toHex(schedule.secret), v.secret);
  assert.equal(toHex(schedule.key), v.key);
  assert.equal(toHex(schedule.baseNonce), v.base_nonce);
  assert.equal(toHex(schedule.exporterSecret), v.exporter_secret);
  assert.ok(v.encryptions.length >= 3);
  for (const [i, e] of v.encryptions.entries()) {
    assert.equal(e.seq, i);
    assert.equal(toHex(referenceNonce(schedule.baseNonce, e.seq)), e.nonce);
    const sealed = referenceSeal(
      fromHex(v.pkRm),
      fromHex(v.info),
      fromHex(e.aad),
      fromHex(e.pt),
      fromHex(v.ikmE),
      e.seq,
    );
    assert.equal(toHex(sealed.ct), e.ct, `encryption ${e.seq}`);
  }
  assert.equal(
    toHex(
      referenceOpen(
        fromHex(v.skRm),
        fromHex(v.enc),
        fromHex(v.info),
        fromHex(first.aad),
        fromHex(first.ct),
      ),
    ),
    first.pt,
  );
});
