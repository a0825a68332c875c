// Known answers for the primitives under our suite (SECURITY-TESTS #9): X25519 (RFC 7748),
// Ed25519 (RFC 8032), HKDF-SHA256 (RFC 5869) and AES-256-GCM (GCM spec test cases 13-16),
// each through both APIs a Keyhole runtime may use: node:crypto and WebCrypto (crypto.subtle).
// The vectors live in test/vectors/kat/; test/vectors/README.md says where each came from.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
  sign,
  verify,
  webcrypto,
} from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const { subtle } = webcrypto;

// From dist/kat/ (the compiled location of this file) up to the package root.
function readVector<T>(name: string): T {
  return JSON.parse(
    readFileSync(new URL(`../../test/vectors/kat/${name}`, import.meta.url), "utf8"),
  ) as T;
}

/** Strict hex decoding: a mistyped vector must fail loudly, not decode to fewer bytes. */
function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new Error(`not lowercase hex: ${hex.slice(0, 16)}`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString("hex");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function flipBit(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

// Raw 32-byte keys go into node:crypto as DER. The encodings are fixed for these curves:
// PKCS#8 = SEQUENCE { INTEGER 0, AlgorithmIdentifier { OID }, OCTET STRING { OCTET STRING key } }
// SPKI   = SEQUENCE { AlgorithmIdentifier { OID }, BIT STRING key }
// with OID 1.3.101.110 (06 03 2b 65 6e) for X25519 and 1.3.101.112 (06 03 2b 65 70) for Ed25519
// (RFC 8410 §3, §7). Only the 32 key bytes follow each prefix.
const DER_PREFIX = {
  x25519: {
    pkcs8: fromHex("302e020100300506032b656e04220420"),
    spki: fromHex("302a300506032b656e032100"),
  },
  ed25519: {
    pkcs8: fromHex("302e020100300506032b657004220420"),
    spki: fromHex("302a300506032b6570032100"),
  },
} as const;

type Curve = keyof typeof DER_PREFIX;

function pkcs8(curve: Curve, raw: Uint8Array): Uint8Array {
  return concat(DER_PREFIX[curve].pkcs8, raw);
}

function spki(curve: Curve, raw: Uint8Array): Uint8Array {
  return concat(DER_PREFIX[curve].spki, raw);
}

function nodePrivateKey(curve: Curve, raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.from(pkcs8(curve, raw)), format: "der", type: "pkcs8" });
}

function nodePublicKey(curve: Curve, raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(spki(curve, raw)), format: "der", type: "spki" });
}

/** The raw public key of a node:crypto key: the last 32 bytes of its SPKI DER. */
function rawPublicKey(curve: Curve, key: KeyObject): string {
  const der = new Uint8Array(createPublicKey(key).export({ format: "der", type: "spki" }));
  assert.equal(toHex(der.subarray(0, -32)), toHex(DER_PREFIX[curve].spki));
  return toHex(der.subarray(-32));
}

// ---------------------------------------------------------------------------------------------
// X25519, RFC 7748

interface X25519Vectors {
  readonly source: string;
  readonly scalarMult: readonly {
    readonly section: string;
    readonly scalar: string;
    readonly u: string;
    readonly output: string;
  }[];
  readonly iterated: {
    readonly start: string;
    readonly after1: string;
    readonly after1000: string;
  };
  readonly diffieHellman: {
    readonly alicePrivate: string;
    readonly alicePublic: string;
    readonly bobPrivate: string;
    readonly bobPublic: string;
    readonly shared: string;
  };
  readonly lowOrderPublicKeys: readonly { readonly name: string; readonly u: string }[];
}

const x25519 = readVector<X25519Vectors>("x25519.json");

function nodeX25519(scalar: Uint8Array, u: Uint8Array): Uint8Array {
  return new Uint8Array(
    diffieHellman({
      privateKey: nodePrivateKey("x25519", scalar),
      publicKey: nodePublicKey("x25519", u),
    }),
  );
}

async function webX25519(scalar: Uint8Array, u: Uint8Array): Promise<Uint8Array> {
  // WebCrypto imports an X25519 private key only as PKCS#8 (or JWK), the public one as raw.
  const privateKey = await subtle.importKey(
    "pkcs8",
    pkcs8("x25519", scalar),
    { name: "X25519" },
    false,
    ["deriveBits"],
  );
  const publicKey = await subtle.importKey("raw", u, { name: "X25519" }, true, []);
  return new Uint8Array(
    await subtle.deriveBits({ name: "X25519", public: publicKey }, privateKey, 256),
  );
}

test("X25519 (node:crypto) computes the RFC 7748 §5.2 scalar multiplications", () => {
  assert.equal(x25519.scalarMult.length, 2);
  for (const c of x25519.scalarMult) {
    assert.equal(toHex(nodeX25519(fromHex(c.scalar), fromHex(c.u))), c.output, c.section);
  }
});

test("X25519 (WebCrypto) computes the RFC 7748 §5.2 scalar multiplications", async () => {
  for (const c of x25519.scalarMult) {
    assert.equal(toHex(await webX25519(fromHex(c.scalar), fromHex(c.u))), c.output, c.section);
  }
});

test("X25519 (node:crypto) reaches the RFC 7748 §5.2 iterated results after 1 and 1,000 steps", () => {
  // k = u = 9; each step: k, u = X25519(k, u), k. (The 1,000,000-step value is left out: it
  // takes minutes and proves nothing the 1,000-step one does not.)
  let k = fromHex(x25519.iterated.start);
  let u = fromHex(x25519.iterated.start);
  for (let i = 1; i <= 1000; i++) {
    const next = nodeX25519(k, u);
    u = k;
    k = next;
    if (i === 1) assert.equal(toHex(k), x25519.iterated.after1);
  }
  assert.equal(toHex(k), x25519.iterated.after1000);
});

test("X25519 (node:crypto) derives the RFC 7748 §6.1 public keys and shared secret", () => {
  const d = x25519.diffieHellman;
  const alice = nodePrivateKey("x25519", fromHex(d.alicePrivate));
  const bob = nodePrivateKey("x25519", fromHex(d.bobPrivate));
  assert.equal(rawPublicKey("x25519", alice), d.alicePublic);
  assert.equal(rawPublicKey("x25519", bob), d.bobPublic);
  const aliceSide = diffieHellman({
    privateKey: alice,
    publicKey: nodePublicKey("x25519", fromHex(d.bobPublic)),
  });
  const bobSide = diffieHellman({
    privateKey: bob,
    publicKey: nodePublicKey("x25519", fromHex(d.alicePublic)),
  });
  assert.equal(toHex(aliceSide), d.shared);
  assert.equal(toHex(bobSide), d.shared);
});

test("X25519 (WebCrypto) derives the RFC 7748 §6.1 public keys and shared secret", async () => {
  const d = x25519.diffieHellman;
  for (const [priv, pub] of [
    [d.alicePrivate, d.alicePublic],
    [d.bobPrivate, d.bobPublic],
  ] as const) {
    // An extractable private key exports as JWK with its public key in `x` (RFC 8037 §2).
    const key = await subtle.importKey(
      "pkcs8",
      pkcs8("x25519", fromHex(priv)),
      { name: "X25519" },
      true,
      ["deriveBits"],
    );
    const jwk = await subtle.exportKey("jwk", key);
    assert.equal(toHex(Buffer.from(jwk.x ?? "", "base64url")), pub);
  }
  assert.equal(toHex(await webX25519(fromHex(d.alicePrivate), fromHex(d.bobPublic))), d.shared);
  assert.equal(toHex(await webX25519(fromHex(d.bobPrivate), fromHex(d.alicePublic))), d.shared);
});

// RFC 7748 §6.1: with a low-order public key the output is all zeros; a protocol MAY check for
// it and abort, and RFC 9180 §7.1.4 requires HPKE to. Both Node APIs sit on OpenSSL, whose
// X25519 derive fails on an all-zero result, so neither ever hands the zero secret back. These
// tests pin that: if a runtime ever returned the zeros instead, our own check would be the only
// one left, and we want to know.
test("X25519 (node:crypto) refuses every low-order public key instead of returning the all-zero secret", () => {
  const scalar = fromHex(x25519.diffieHellman.alicePrivate);
  assert.equal(x25519.lowOrderPublicKeys.length, 7);
  for (const { name, u } of x25519.lowOrderPublicKeys) {
    assert.throws(
      () => nodeX25519(scalar, fromHex(u)),
      { code: "ERR_OSSL_FAILED_DURING_DERIVATION" },
      name,
    );
  }
  // Control: the same private key with a proper public key derives normally.
  assert.equal(
    toHex(nodeX25519(scalar, fromHex(x25519.diffieHellman.bobPublic))),
    x25519.diffieHellman.shared,
  );
});

test("X25519 (WebCrypto) deriveBits throws on every low-order public key, never returning zeros", async () => {
  const scalar = fromHex(x25519.diffieHellman.alicePrivate);
  for (const { name, u } of x25519.lowOrderPublicKeys) {
    // Importing the point is allowed (it is a valid encoding); deriving from it is not.
    await assert.rejects(webX25519(scalar, fromHex(u)), { name: "OperationError" }, name);
  }
  assert.equal(
    toHex(await webX25519(scalar, fromHex(x25519.diffieHellman.bobPublic))),
    x25519.diffieHellman.shared,
  );
});

// ---------------------------------------------------------------------------------------------
// Ed25519, RFC 8032

interface Ed25519Vectors {
  readonly source: string;
  readonly tests: readonly {
    readonly section: string;
    readonly secretKey: string;
    readonly publicKey: string;
    readonly message: string;
    readonly signature: string;
  }[];
}

const ed25519 = readVector<Ed25519Vectors>("ed25519.json");

test("Ed25519 vectors include RFC 8032 §7.1 TESTs 1-3 and the 1023-byte message of TEST 1024", () => {
  assert.deepEqual(
    ed25519.tests.map((t) => fromHex(t.message).length),
    [0, 1, 2, 1023],
  );
});

test("Ed25519 (node:crypto) derives the RFC 8032 §7.1 public keys and signs to the exact signatures", () => {
  for (const t of ed25519.tests) {
    const key = nodePrivateKey("ed25519", fromHex(t.secretKey));
    assert.equal(rawPublicKey("ed25519", key), t.publicKey, t.section);
    assert.equal(toHex(sign(null, fromHex(t.message), key)), t.signature, t.section);
  }
});

test("Ed25519 (WebCrypto) derives the RFC 8032 §7.1 public keys and signs to the exact signatures", async () => {
  for (const t of ed25519.tests) {
    const key = await subtle.importKey(
      "pkcs8",
      pkcs8("ed25519", fromHex(t.secretKey)),
      { name: "Ed25519" },
      true,
      ["sign"],
    );
    const jwk = await subtle.exportKey("jwk", key);
    assert.equal(toHex(Buffer.from(jwk.x ?? "", "base64url")), t.publicKey, t.section);
    const signature = await subtle.sign({ name: "Ed25519" }, key, fromHex(t.message));
    assert.equal(toHex(signature), t.signature, t.section);
  }
});

test("Ed25519 (node:crypto) verifies the RFC 8032 signatures and rejects one flipped bit", () => {
  for (const t of ed25519.tests) {
    const key = nodePublicKey("ed25519", fromHex(t.publicKey));
    const message = fromHex(t.message);
    const signature = fromHex(t.signature);
    assert.equal(verify(null, message, key, signature), true, t.section);
    assert.equal(verify(null, message, key, flipBit(signature, 0)), false, `${t.section}: R`);
    assert.equal(verify(null, message, key, flipBit(signature, 63)), false, `${t.section}: S`);
    if (message.length > 0) {
      assert.equal(verify(null, flipBit(message, 0), key, signature), false, `${t.section}: msg`);
    }
  }
});

test("Ed25519 (WebCrypto) verifies the RFC 8032 signatures and rejects one flipped bit", async () => {
  for (const t of ed25519.tests) {
    const key = await subtle.importKey("raw", fromHex(t.publicKey), { name: "Ed25519" }, false, [
      "verify",
    ]);
    const message = fromHex(t.message);
    const signature = fromHex(t.signature);
    const check = (sig: Uint8Array, msg: Uint8Array): Promise<boolean> =>
      subtle.verify({ name: "Ed25519" }, key, sig, msg);
    assert.equal(await check(signature, message), true, t.section);
    assert.equal(await check(flipBit(signature, 0), message), false, `${t.section}: R`);
    assert.equal(await check(flipBit(signature, 63), message), false, `${t.section}: S`);
    if (message.length > 0) {
      assert.equal(await check(signature, flipBit(message, 0)), false, `${t.section}: msg`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// HKDF-SHA256, RFC 5869

interface HkdfVectors {
  readonly source: string;
  readonly cases: readonly {
    readonly section: string;
    readonly ikm: string;
    readonly salt: string;
    readonly info: string;
    readonly L: number;
    readonly prk: string;
    readonly okm: string;
  }[];
}

const hkdf = readVector<HkdfVectors>("hkdf-sha256.json");

test("HKDF-Extract (HMAC-SHA256, node:crypto) gives the RFC 5869 A.1-A.3 PRKs", () => {
  assert.equal(hkdf.cases.length, 3);
  for (const c of hkdf.cases) {
    // RFC 5869 §2.2: an absent salt is HashLen zeros; HMAC pads a short key with zeros, so the
    // empty salt of A.3 gives the same PRK either way.
    const prk = createHmac("sha256", fromHex(c.salt)).update(fromHex(c.ikm)).digest();
    assert.equal(toHex(prk), c.prk, c.section);
  }
});

test("HKDF-SHA256 (node:crypto hkdfSync) gives the RFC 5869 A.1-A.3 OKMs", () => {
  for (const c of hkdf.cases) {
    const okm = hkdfSync("sha256", fromHex(c.ikm), fromHex(c.salt), fromHex(c.info), c.L);
    assert.equal(toHex(okm), c.okm, c.section);
  }
});

test("HKDF-SHA256 (WebCrypto deriveBits) gives the RFC 5869 A.1-A.3 OKMs", async () => {
  for (const c of hkdf.cases) {
    const ikm = await subtle.importKey("raw", fromHex(c.ikm), "HKDF", false, ["deriveBits"]);
    const okm = await subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: fromHex(c.salt), info: fromHex(c.info) },
      ikm,
      c.L * 8,
    );
    assert.equal(toHex(okm), c.okm, c.section);
  }
});

// ---------------------------------------------------------------------------------------------
// AES-256-GCM, GCM specification test cases 13-16

interface GcmVectors {
  readonly source: string;
  readonly cases: readonly {
    readonly section: string;
    readonly key: string;
    readonly iv: string;
    readonly pt: string;
    readonly aad: string;
    readonly ct: string;
    readonly tag: string;
  }[];
}

const gcm = readVector<GcmVectors>("aes-256-gcm.json");

function nodeGcmOpen(
  key: Uint8Array,
  iv: Uint8Array,
  ct: Uint8Array,
  aad: Uint8Array,
  tag: Uint8Array,
) {
  const decipher = createDecipheriv("aes-256-gcm", key, iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return concat(decipher.update(ct), decipher.final());
}

test("AES-256-GCM (node:crypto) encrypts GCM test cases 13-16 to the exact ciphertext and tag", () => {
  assert.equal(gcm.cases.length, 4);
  for (const c of gcm.cases) {
    assert.equal(fromHex(c.key).length, 32, c.section);
    const cipher = createCipheriv("aes-256-gcm", fromHex(c.key), fromHex(c.iv));
    cipher.setAAD(fromHex(c.aad));
    const ct = concat(cipher.update(fromHex(c.pt)), cipher.final());
    assert.equal(toHex(ct), c.ct, c.section);
    assert.equal(toHex(cipher.getAuthTag()), c.tag, c.section);
  }
});

test("AES-256-GCM (node:crypto) decrypts GCM test cases 13-16 and rejects a flipped tag or ciphertext bit", () => {
  for (const c of gcm.cases) {
    const [key, iv, ct, aad, tag] = [c.key, c.iv, c.ct, c.aad, c.tag].map(fromHex) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    assert.equal(toHex(nodeGcmOpen(key, iv, ct, aad, tag)), c.pt, c.section);
    assert.throws(() => nodeGcmOpen(key, iv, ct, aad, flipBit(tag, 15)), /auth/i, c.section);
    if (ct.length > 0) {
      assert.throws(() => nodeGcmOpen(key, iv, flipBit(ct, 0), aad, tag), /auth/i, c.section);
    }
  }
});

test("AES-256-GCM (WebCrypto) encrypts GCM test cases 13-16 to the exact ciphertext and tag", async () => {
  for (const c of gcm.cases) {
    const key = await subtle.importKey("raw", fromHex(c.key), "AES-GCM", false, ["encrypt"]);
    const sealed = await subtle.encrypt(
      { name: "AES-GCM", iv: fromHex(c.iv), additionalData: fromHex(c.aad), tagLength: 128 },
      key,
      fromHex(c.pt),
    );
    // WebCrypto returns ciphertext || tag.
    assert.equal(toHex(sealed), c.ct + c.tag, c.section);
  }
});

test("AES-256-GCM (WebCrypto) decrypts GCM test cases 13-16 and rejects a flipped tag bit", async () => {
  for (const c of gcm.cases) {
    const key = await subtle.importKey("raw", fromHex(c.key), "AES-GCM", false, ["decrypt"]);
    const params = { name: "AES-GCM", iv: fromHex(c.iv), additionalData: fromHex(c.aad) };
    const sealed = fromHex(c.ct + c.tag);
    assert.equal(toHex(await subtle.decrypt(params, key, sealed)), c.pt, c.section);
    await assert.rejects(
      subtle.decrypt(params, key, flipBit(sealed, sealed.length - 1)),
      { name: "OperationError" },
      c.section,
    );
  }
});
