#!/usr/bin/env node
// Writes the golden vectors of Keyhole's own v1 formats:
//   packages/core/test/vectors/v1.json           every format, from fixed inputs
//   packages/core/test/vectors/v1-negative.json  inputs that every release must reject
//
// Usage (from the repository root, after `npx tsc -b packages/core`):
//   node packages/core/scripts/generate-vectors.mjs          write both files
//   node packages/core/scripts/generate-vectors.mjs --check  regenerate in memory, compare, exit 1 on a difference
//
// The vectors are frozen: once committed, a later release must still open and verify them
// (src/vectors.test.ts, src/vectors-negative.test.ts). Regenerate only to add a format, never
// to make a failing test pass.
//
// Output is deterministic, so `--check` can prove the files came from this script. Every input is
// SHA-256 of a fixed label (see `fixed`). The two sources of randomness in the real code are made
// deterministic here, and only here: WebCrypto's getRandomValues (the DEK, dek id and nonce of
// `sealValue`) draws from a SHA-256 counter stream, and each wrap's HPKE ephemeral key is derived
// (RFC 9180 DeriveKeyPair) from 32 bytes of that stream, recorded next to each wrap as
// `ephemeral_ikm` and sealed with `hpkeSealWithEphemeralIkmForTesting`, the test-only seal of
// dist/hpke.js.
// Signatures need no help: Ed25519 is deterministic (RFC 8032 §5.1.6).
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hpkeSealWithEphemeralIkmForTesting } from "../dist/hpke.js";
import * as core from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "test", "vectors");

const sha256 = (data) => new Uint8Array(createHash("sha256").update(data).digest());
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const fixed = (name, length = 32) =>
  sha256(core.utf8(`keyhole/v1/test-vectors/${name}`)).subarray(0, length);

// SHA-256 counter stream standing in for the system RNG while the vectors are made.
let drbgCounter = 0;
let drbgBuffer = new Uint8Array(0);
function drbg(length) {
  while (drbgBuffer.length < length) {
    const block = sha256(
      core.concatBytes(core.utf8("keyhole/v1/test-vectors/drbg"), core.u32(drbgCounter++)),
    );
    drbgBuffer = core.concatBytes(drbgBuffer, block);
  }
  const out = drbgBuffer.slice(0, length);
  drbgBuffer = drbgBuffer.slice(length);
  return out;
}
globalThis.crypto.getRandomValues = (array) => {
  array.set(drbg(array.length));
  return array;
};

// A KHW1 whose HPKE ephemeral key comes from the next 32 bytes of the stream (the ikmE of
// DeriveKeyPair, as the real seal's one random draw would be), laid out as `wrapDek` lays it out.
const WRAP_INFO = core.utf8("keyhole/v1/dek-wrap");
async function wrapWithEphemeral(ref, dekId, dek, recipient) {
  const ephemeralIkm = drbg(32);
  const aad = core.encodeWrapAad(ref, dekId, recipient);
  const { enc, ciphertext } = await hpkeSealWithEphemeralIkmForTesting(
    recipient.publicKey,
    WRAP_INFO,
    aad,
    dek,
    ephemeralIkm,
  );
  const wrap = core.concatBytes(
    core.WRAP_MAGIC,
    Uint8Array.of(core.SUITE_V1),
    await core.fingerprint(recipient.publicKey),
    enc,
    ciphertext,
  );
  // `wrapDek` itself, given the same 32 bytes as its random draw, must make the same bytes: the
  // layout above is not allowed to drift from the real one.
  const getRandomValues = globalThis.crypto.getRandomValues;
  globalThis.crypto.getRandomValues = (array) => {
    if (array.length !== ephemeralIkm.length) throw new Error("wrapDek drew an unexpected length");
    array.set(ephemeralIkm);
    return array;
  };
  try {
    const real = await core.wrapDek(ref, dekId, dek, recipient);
    if (!core.equalBytes(real, wrap)) throw new Error("wrapDek and the generator's KHW1 differ");
  } finally {
    globalThis.crypto.getRandomValues = getRandomValues;
  }
  return { wrap, ephemeralIkm };
}

async function buildPositive() {
  const owner = await core.importSigningKey(fixed("owner-sign-seed"));
  const ownerFpr = await core.fingerprint(owner.publicKey);
  const ownerEncIkm = fixed("owner-enc-ikm");
  const ownerEnc = await core.deriveRecipientKeyPair(ownerEncIkm);
  const auditKey = await core.importSigningKey(fixed("audit-sign-seed"));

  const vaultId = `vlt_${core.encodeBase64url(fixed("vault-id", 16))}`;
  const agentId = `agt_${core.encodeBase64url(fixed("agent-id", 16))}`;
  const secretId = `sec_${core.encodeBase64url(fixed("secret-id", 16))}`;
  const secretName = "openai-api-key";

  const tokenId = fixed("token-id", 16);
  const tokenSeed = fixed("token-seed");
  const token = new core.AgentToken(tokenId, tokenSeed, ownerFpr);
  const tokenText = token.encode();
  const agentKeys = await token.deriveKeys();
  const xIkm = await core.hkdfSha256(
    tokenSeed,
    core.utf8("keyhole/v1"),
    core.concatBytes(core.label("token-x25519"), tokenId),
    32,
  );
  const tokenBytes = core.decodeBase64url(tokenText.slice(4));

  const ref = { vaultId, secretId, version: 3 };
  const plaintext = core.utf8("sk-test-keyhole-golden-vector-0001");
  const { envelope, dek, dekId } = await core.sealValue(ref, plaintext);
  const parsed = core.parseValueEnvelope(envelope);

  const agentRecipient = {
    recipientId: core.agentRecipientId(agentId),
    publicKey: agentKeys.recipient.publicKey,
  };
  const ownerRecipient = {
    recipientId: core.ownerRecipientId(vaultId),
    publicKey: ownerEnc.publicKey,
  };
  const agentWrap = await wrapWithEphemeral(ref, dekId, dek, agentRecipient);
  const ownerWrap = await wrapWithEphemeral(ref, dekId, dek, ownerRecipient);

  const grant = {
    vaultId,
    secretId,
    secretName,
    version: ref.version,
    dekId,
    agentId,
    recipientFingerprint: await core.fingerprint(agentKeys.recipient.publicKey),
    valueEnvelope: envelope,
    wrap: agentWrap.wrap,
    issuedAt: 1767225600000,
    notAfter: 1798761600000,
    allowedHosts: core.canonicalHosts(["API.openai.com", "localhost:8080"]),
  };
  const grantMessage = await core.encodeGrantMessage(grant);
  const grantSig = await core.signGrant(owner, grant);

  const agentKey = {
    vaultId,
    agentId,
    agentPublicKey: agentKeys.recipient.publicKey,
    createdAt: 1767225500000,
  };
  const agentKeySig = await core.signAgentKey(owner, agentKey);

  const auditEntries = [
    {
      seq: 1,
      ts: 1767225000000,
      requestId: "req_0001",
      actorType: "anonymous",
      actorId: "",
      action: "vault.init",
      result: "ok",
      agentId: "",
      secretId: "",
      secretVersion: 0,
      clientIp: "127.0.0.1",
      userAgent: "keyhole-cli/0.1.0",
      detail: "",
    },
    {
      seq: 2,
      ts: 1767225600000,
      requestId: "req_0002",
      actorType: "owner",
      actorId: vaultId,
      action: "grant.add",
      result: "ok",
      agentId,
      secretId,
      secretVersion: 3,
      clientIp: "::1",
      userAgent: "keyhole-cli/0.1.0",
      detail: "hosts=api.openai.com,localhost:8080",
    },
    {
      seq: 3,
      ts: 1767225700000,
      requestId: "req_0003",
      actorType: "agent",
      actorId: agentId,
      action: "secret.read",
      result: "ok",
      agentId,
      secretId,
      secretVersion: 3,
      clientIp: "10.0.0.7",
      userAgent: "agent/1.0 (café)",
      detail: "name=openai-api-key",
    },
  ];
  let head = core.AUDIT_GENESIS;
  const auditOut = [];
  for (const entry of auditEntries) {
    const leaf = core.auditLeaf(entry, sha256);
    head = core.chainAuditHash(head, entry, sha256);
    auditOut.push({
      fields: snakeCase(entry),
      canonical: hex(core.encodeAuditEntry(entry)),
      leaf: hex(leaf),
      entry_hash: hex(head),
    });
  }
  const checkpointBytes = core.encodeCheckpoint(vaultId, auditEntries.length, head);
  const checkpointSig = await core.sign(auditKey, checkpointBytes);

  const body = core.utf8('{"id":"sec_x","expected_version":2,"version":3}');
  const ownerRequest = {
    vaultId,
    method: "put",
    pathWithQuery: "/v1/owner/secrets/openai-api-key?dry=0",
    timestamp: 1767225600123,
    nonce: fixed("owner-request-nonce", 16),
    bodyHash: sha256(body),
  };
  const ownerRequestMessage = core.encodeOwnerRequestMessage(ownerRequest);
  const ownerRequestSig = await core.sign(owner, ownerRequestMessage);
  const emptyBodyHash = sha256(new Uint8Array(0));

  const bootstrapCode = "K7QX-2MPF-9ZRT-4WHD";
  const initMessage = core.encodeInitProofMessage(
    vaultId,
    bootstrapCode,
    owner.publicKey,
    ownerEnc.publicKey,
  );
  const initSig = await core.sign(owner, initMessage);

  return {
    description:
      "Keyhole v1 golden vectors. Frozen: every later release must still open and verify them. " +
      "Byte strings are lower-case hex; see docs/format.md for each layout.",
    generator: "node packages/core/scripts/generate-vectors.mjs (inputs: SHA-256 of fixed labels)",
    owner: {
      sign_seed: hex(fixed("owner-sign-seed")),
      sign_pk: hex(owner.publicKey),
      fingerprint: hex(ownerFpr),
      enc_ikm: hex(ownerEncIkm),
      enc_pk: hex(ownerEnc.publicKey),
    },
    vault_id: vaultId,
    agent_id: agentId,
    token: {
      token_id: hex(tokenId),
      seed: hex(tokenSeed),
      owner_fpr: hex(ownerFpr),
      crc32: hex(tokenBytes.subarray(64)),
      text: tokenText,
      auth_key: hex(agentKeys.authKey),
      x25519_ikm: hex(xIkm),
      x25519_pk: hex(agentKeys.recipient.publicKey),
      authorization: core.formatAgentAuthorization(tokenId, agentKeys.authKey),
      verifier_message: hex(core.verifierMessage(tokenId, agentKeys.authKey)),
    },
    value: {
      vault_id: vaultId,
      secret_id: secretId,
      version: ref.version,
      plaintext: hex(plaintext),
      dek: hex(dek),
      dek_id: hex(dekId),
      nonce: hex(parsed.nonce),
      aad: hex(core.encodeValueAad(ref, dekId)),
      envelope: hex(envelope),
    },
    wraps: {
      agent: {
        recipient_id: agentRecipient.recipientId,
        recipient_pk: hex(agentRecipient.publicKey),
        ephemeral_ikm: hex(agentWrap.ephemeralIkm),
        aad: hex(core.encodeWrapAad(ref, dekId, agentRecipient)),
        wrap: hex(agentWrap.wrap),
      },
      owner: {
        recipient_id: ownerRecipient.recipientId,
        recipient_pk: hex(ownerRecipient.publicKey),
        ephemeral_ikm: hex(ownerWrap.ephemeralIkm),
        aad: hex(core.encodeWrapAad(ref, dekId, ownerRecipient)),
        wrap: hex(ownerWrap.wrap),
      },
    },
    grant: {
      vault_id: vaultId,
      secret_id: secretId,
      secret_name: secretName,
      version: grant.version,
      dek_id: hex(dekId),
      agent_id: agentId,
      recipient_fpr: hex(grant.recipientFingerprint),
      value_sha256: hex(sha256(envelope)),
      wrap_sha256: hex(sha256(agentWrap.wrap)),
      issued_at: grant.issuedAt,
      not_after: grant.notAfter,
      allowed_hosts: grant.allowedHosts,
      message: hex(grantMessage),
      signature: hex(grantSig),
    },
    agent_key: {
      vault_id: vaultId,
      agent_id: agentId,
      agent_pk: hex(agentKey.agentPublicKey),
      created_at: agentKey.createdAt,
      message: hex(core.encodeAgentKeyMessage(agentKey)),
      signature: hex(agentKeySig),
    },
    audit: {
      entries: auditOut,
      checkpoint: {
        log_id: vaultId,
        size: auditEntries.length,
        head: hex(head),
        bytes: hex(checkpointBytes),
        audit_sign_seed: hex(fixed("audit-sign-seed")),
        audit_pk: hex(auditKey.publicKey),
        signature: hex(checkpointSig),
      },
    },
    owner_request: {
      vault_id: vaultId,
      method: ownerRequest.method,
      path_with_query: ownerRequest.pathWithQuery,
      timestamp: ownerRequest.timestamp,
      nonce: hex(ownerRequest.nonce),
      body: hex(body),
      body_sha256: hex(ownerRequest.bodyHash),
      empty_body_sha256: hex(emptyBodyHash),
      message: hex(ownerRequestMessage),
      signature: hex(ownerRequestSig),
      authorization: core.formatOwnerAuthorization(
        ownerRequest.timestamp,
        ownerRequest.nonce,
        ownerRequestSig,
      ),
    },
    init_proof: {
      vault_id: vaultId,
      bootstrap_code: bootstrapCode,
      owner_sign_pk: hex(owner.publicKey),
      owner_enc_pk: hex(ownerEnc.publicKey),
      message: hex(initMessage),
      signature: hex(initSig),
    },
  };
}

// The audit fields as they appear on the wire (docs/api.md AuditEntry): request_id, actor_type, …
function snakeCase(fields) {
  return Object.fromEntries(
    Object.entries(fields).map(([key, value]) => [
      key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      value,
    ]),
  );
}

function flipBit(bytes, bit) {
  const out = bytes.slice();
  out[bit >> 3] ^= 0x80 >> (bit & 7);
  return out;
}

function withByte(bytes, index, value) {
  const out = bytes.slice();
  out[index] = value;
  return out;
}

async function buildNegative(positive) {
  // A small envelope (one-byte value) keeps "every bit flip" at 400 cases.
  const ref = { vaultId: positive.vault_id, secretId: positive.value.secret_id, version: 1 };
  const plaintext = core.utf8("k");
  const { envelope, dek, dekId } = await core.sealValue(ref, plaintext);
  const agentRecipient = {
    recipientId: positive.wraps.agent.recipient_id,
    publicKey: Buffer.from(positive.wraps.agent.recipient_pk, "hex"),
  };
  const { wrap, ephemeralIkm } = await wrapWithEphemeral(ref, dekId, dek, agentRecipient);

  const valueCases = [];
  for (let bit = 0; bit < envelope.length * 8; bit++) {
    const byte = bit >> 3;
    valueCases.push({
      name: `bit flip ${bit}`,
      envelope: hex(flipBit(envelope, bit)),
      error: byte < 5 ? "invalid_envelope" : "decrypt_failed",
    });
  }
  for (const suite of [0x00, 0x02, 0xff]) {
    valueCases.push({
      name: `suite 0x${suite.toString(16).padStart(2, "0")}`,
      envelope: hex(withByte(envelope, 4, suite)),
      error: "invalid_envelope",
    });
  }
  for (const magic of ["KHS0", "KHS2", "khs1", "KHW1"]) {
    valueCases.push({
      name: `magic ${magic}`,
      envelope: hex(core.concatBytes(core.utf8(magic), envelope.subarray(4))),
      error: "invalid_envelope",
    });
  }
  for (const length of [0, 4, 5, 33, 48]) {
    valueCases.push({
      name: `truncated to ${length} bytes`,
      envelope: hex(envelope.subarray(0, length)),
      error: "invalid_envelope",
    });
  }
  valueCases.push({
    name: "truncated by one byte",
    envelope: hex(envelope.subarray(0, envelope.length - 1)),
    error: "decrypt_failed",
  });
  valueCases.push({
    name: "one trailing zero byte",
    envelope: hex(core.concatBytes(envelope, new Uint8Array(1))),
    error: "decrypt_failed",
  });

  const wrapCases = [];
  for (let bit = 0; bit < wrap.length * 8; bit++) {
    const byte = bit >> 3;
    wrapCases.push({
      name: `bit flip ${bit}`,
      wrap: hex(flipBit(wrap, bit)),
      error: byte < 5 ? "invalid_envelope" : "decrypt_failed",
    });
  }
  for (const suite of [0x00, 0x02, 0xff]) {
    wrapCases.push({
      name: `suite 0x${suite.toString(16).padStart(2, "0")}`,
      wrap: hex(withByte(wrap, 4, suite)),
      error: "invalid_envelope",
    });
  }
  for (const magic of ["KHW0", "KHW2", "khw1", "KHS1"]) {
    wrapCases.push({
      name: `magic ${magic}`,
      wrap: hex(core.concatBytes(core.utf8(magic), wrap.subarray(4))),
      error: "invalid_envelope",
    });
  }
  for (const length of [0, 5, 53, 100]) {
    wrapCases.push({
      name: `truncated to ${length} bytes`,
      wrap: hex(wrap.subarray(0, length)),
      error: "invalid_envelope",
    });
  }
  wrapCases.push({
    name: "one trailing zero byte",
    wrap: hex(core.concatBytes(wrap, new Uint8Array(1))),
    error: "invalid_envelope",
  });

  const tokenText = positive.token.text;
  const tokenBody = core.decodeBase64url(tokenText.slice(4));
  const lastIndex = tokenText.length - 1;
  const last = tokenText.charAt(lastIndex);
  // The last character carries 2 padding bits (68 bytes = 91 chars × 6 bits − 2): set one of them.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const nonCanonicalLast = alphabet.charAt(alphabet.indexOf(last) | 1);
  const badCrc = tokenBody.slice();
  badCrc[67] ^= 0x01;
  const tokenCases = [
    { name: "prefix kh0_", text: `kh0_${tokenText.slice(4)}` },
    { name: "prefix kh2_", text: `kh2_${tokenText.slice(4)}` },
    { name: "prefix KH1_", text: `KH1_${tokenText.slice(4)}` },
    { name: "no prefix", text: tokenText.slice(4) },
    { name: "one character short", text: tokenText.slice(0, -1) },
    { name: "one character long", text: `${tokenText}A` },
    { name: "trailing newline", text: `${tokenText}\n` },
    { name: "leading space", text: ` ${tokenText.slice(0, -1)}` },
    { name: "standard base64 alphabet", text: `kh1_+${tokenText.slice(5)}` },
    { name: "padding character", text: `${tokenText.slice(0, -1)}=` },
    { name: "non-zero trailing bits", text: tokenText.slice(0, lastIndex) + nonCanonicalLast },
    { name: "checksum mismatch", text: `kh1_${core.encodeBase64url(badCrc)}` },
    { name: "empty", text: "" },
  ];

  const base64urlCases = [
    { name: "padding", text: "AA==" },
    { name: "single padding", text: "AAA=" },
    { name: "plus", text: "A+A" },
    { name: "slash", text: "A/A" },
    { name: "space", text: "AA AA" },
    { name: "newline", text: "AAAA\n" },
    { name: "length % 4 == 1", text: "AAAAA" },
    { name: "one character", text: "A" },
    { name: "non-zero trailing bits (1 byte)", text: "AB" },
    { name: "non-zero trailing bits (2 bytes)", text: "AAB" },
    { name: "non-ASCII", text: "AAé" },
    { name: "dot", text: "AA.A" },
  ];

  return {
    description:
      "Keyhole v1 negative vectors: every case must be rejected, with the generic error named. " +
      "Context (keys, ids) comes from v1.json. Byte strings are lower-case hex.",
    generator: "node packages/core/scripts/generate-vectors.mjs",
    value: {
      about: "openValue(ref, dek, envelope) for each case must throw KeyholeError(error)",
      vault_id: ref.vaultId,
      secret_id: ref.secretId,
      version: ref.version,
      plaintext: hex(plaintext),
      dek: hex(dek),
      dek_id: hex(dekId),
      envelope: hex(envelope),
      cases: valueCases,
    },
    wrap: {
      about:
        "unwrapDek(ref, dek_id, recipient_id, agent key pair of v1.json's token, wrap) for each case must throw KeyholeError(error)",
      recipient_id: agentRecipient.recipientId,
      ephemeral_ikm: hex(ephemeralIkm),
      wrap: hex(wrap),
      cases: wrapCases,
    },
    token: {
      about: "parseToken(text) for each case must throw KeyholeError(invalid_token)",
      cases: tokenCases,
    },
    base64url: {
      about: "tryDecodeBase64url(text) must return null for each case",
      cases: base64urlCases,
    },
  };
}

// Pretty JSON, except that the entries of a "cases" array sit one per line.
function serialize(value) {
  const render = (node, indent, compactItems) => {
    const pad = " ".repeat(indent);
    if (Array.isArray(node)) {
      if (node.length === 0) return "[]";
      const items = node.map((item) =>
        compactItems ? JSON.stringify(item) : render(item, indent + 2, false),
      );
      return `[\n${items.map((item) => `${pad}  ${item}`).join(",\n")}\n${pad}]`;
    }
    if (node !== null && typeof node === "object") {
      const fields = Object.entries(node).map(
        ([key, item]) =>
          `${pad}  ${JSON.stringify(key)}: ${render(item, indent + 2, key === "cases")}`,
      );
      return `{\n${fields.join(",\n")}\n${pad}}`;
    }
    return JSON.stringify(node);
  };
  return `${render(value, 0, false)}\n`;
}

const positive = await buildPositive();
const negative = await buildNegative(positive);
const outputs = [
  [join(outDir, "v1.json"), serialize(positive)],
  [join(outDir, "v1-negative.json"), serialize(negative)],
];

if (process.argv.includes("--check")) {
  let same = true;
  for (const [path, text] of outputs) {
    let current = "";
    try {
      current = readFileSync(path, "utf8");
    } catch {}
    if (current !== text) {
      same = false;
      process.stderr.write(`generate-vectors: ${path} differs from what the generator produces\n`);
    }
  }
  process.exit(same ? 0 : 1);
}
for (const [path, text] of outputs) {
  writeFileSync(path, text);
  process.stdout.write(`wrote ${path}\n`);
}
