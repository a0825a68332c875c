/**
 * The frozen golden vectors of our own formats (test/vectors/v1.json, made by
 * scripts/generate-vectors.mjs). Every release must still open and verify them, and must rebuild
 * every deterministic part byte for byte. Where a part can be recomputed without this package,
 * it is: AES-GCM, HKDF, SHA-256 and Ed25519 with node:crypto, the HPKE wrap with the recorded
 * ephemeral through the node:crypto HPKE of hpke-reference.test.helper.ts, the X25519 key
 * derivation by hand from RFC 9180 §7.1.3.
 */
import assert from "node:assert/strict";
import {
  createCipheriv,
  createPublicKey,
  hkdfSync,
  sign as nodeSign,
  verify as nodeVerify,
} from "node:crypto";
import { before, describe, it } from "node:test";
import { sha256Sync } from "./fixtures.test.helper.js";
import {
  type AgentKeys,
  AgentToken,
  AUDIT_GENESIS,
  auditLeaf,
  canonicalHosts,
  chainAuditHash,
  concatBytes,
  crc32,
  decodeBase64url,
  deriveRecipientKeyPair,
  encodeAgentKeyMessage,
  encodeAuditEntry,
  encodeCheckpoint,
  encodeGrantMessage,
  encodeInitProofMessage,
  encodeOwnerRequestMessage,
  encodeValueAad,
  encodeWrapAad,
  fingerprint,
  formatAgentAuthorization,
  formatOwnerAuthorization,
  type GrantStatement,
  importSigningKey,
  openValue,
  parseOwnerAuthorization,
  parseToken,
  parseValueEnvelope,
  type RecipientKeyPair,
  sign,
  signAgentKey,
  signGrant,
  toHex,
  u32,
  unwrapDek,
  utf8,
  verifierMessage,
  verify,
  verifyAgentKey,
  verifyGrant,
} from "./index.js";
import {
  auditFields,
  h,
  lpRef,
  nodeEd25519,
  nodeSha256,
  rebuildWrap,
  rfc9180DerivePublicKey,
  u64Ref,
  v1,
} from "./vectors.test.helper.js";

describe("golden vectors v1", () => {
  const valueRef = {
    vaultId: v1.value.vault_id,
    secretId: v1.value.secret_id,
    version: v1.value.version,
  };
  let agentKeys: AgentKeys;
  let ownerEnc: RecipientKeyPair;

  before(async () => {
    agentKeys = await parseToken(v1.token.text).deriveKeys();
    ownerEnc = await deriveRecipientKeyPair(h(v1.owner.enc_ikm));
  });

  it("owner: the Ed25519 public key and fingerprint follow from the seed", async () => {
    const key = await importSigningKey(h(v1.owner.sign_seed));
    assert.equal(toHex(key.publicKey), v1.owner.sign_pk);
    assert.equal(toHex(nodeEd25519(h(v1.owner.sign_seed)).publicKey), v1.owner.sign_pk);
    assert.equal(toHex(await fingerprint(key.publicKey)), v1.owner.fingerprint);
    assert.equal(toHex(nodeSha256(key.publicKey).subarray(0, 16)), v1.owner.fingerprint);
  });

  it("owner: the X25519 key pair follows from its ikm (RFC 9180 DeriveKeyPair)", () => {
    assert.equal(toHex(ownerEnc.publicKey), v1.owner.enc_pk);
    assert.equal(toHex(rfc9180DerivePublicKey(h(v1.owner.enc_ikm))), v1.owner.enc_pk);
  });

  it("token: the text is rebuilt from id, seed and owner fingerprint, and parses back", () => {
    const token = new AgentToken(h(v1.token.token_id), h(v1.token.seed), h(v1.token.owner_fpr));
    assert.equal(token.encode(), v1.token.text);
    assert.equal(v1.token.owner_fpr, v1.owner.fingerprint);
    const body = concatBytes(h(v1.token.token_id), h(v1.token.seed), h(v1.token.owner_fpr));
    assert.equal(toHex(u32(crc32(body))), v1.token.crc32);
    assert.equal(toHex(decodeBase64url(v1.token.text.slice(4))), toHex(body) + v1.token.crc32);
    const parsed = parseToken(v1.token.text);
    assert.equal(toHex(parsed.tokenId), v1.token.token_id);
    assert.equal(toHex(parsed.ownerFingerprint), v1.token.owner_fpr);
  });

  it("token: the auth key and the X25519 key follow from the seed (node:crypto HKDF, RFC 9180)", () => {
    const seed = h(v1.token.seed);
    const id = h(v1.token.token_id);
    const salt = utf8("keyhole/v1");
    const auth = hkdfSync("sha256", seed, salt, concatBytes(utf8("keyhole/v1/token-auth"), id), 32);
    const xIkm = hkdfSync(
      "sha256",
      seed,
      salt,
      concatBytes(utf8("keyhole/v1/token-x25519"), id),
      32,
    );
    assert.equal(Buffer.from(auth).toString("hex"), v1.token.auth_key);
    assert.equal(Buffer.from(xIkm).toString("hex"), v1.token.x25519_ikm);
    assert.equal(toHex(agentKeys.authKey), v1.token.auth_key);
    assert.equal(toHex(agentKeys.recipient.publicKey), v1.token.x25519_pk);
    assert.equal(toHex(rfc9180DerivePublicKey(h(v1.token.x25519_ikm))), v1.token.x25519_pk);
  });

  it("token: the Authorization header and the verifier message", () => {
    assert.equal(
      formatAgentAuthorization(h(v1.token.token_id), h(v1.token.auth_key)),
      v1.token.authorization,
    );
    assert.equal(
      toHex(verifierMessage(h(v1.token.token_id), h(v1.token.auth_key))),
      v1.token.verifier_message,
    );
    assert.equal(
      v1.token.verifier_message,
      toHex(concatBytes(utf8("keyhole/v1/verifier"), h(v1.token.token_id), h(v1.token.auth_key))),
    );
  });

  it("KHS1: the AAD is rebuilt exactly and the envelope opens to the plaintext", async () => {
    const dekId = h(v1.value.dek_id);
    const aad = concatBytes(
      lpRef("keyhole/v1/secret-value"),
      lpRef(valueRef.vaultId),
      lpRef(valueRef.secretId),
      u64Ref(valueRef.version),
      lpRef(dekId),
    );
    assert.equal(toHex(aad), v1.value.aad);
    assert.equal(toHex(encodeValueAad(valueRef, dekId)), v1.value.aad);
    const parsed = parseValueEnvelope(h(v1.value.envelope));
    assert.equal(toHex(parsed.dekId), v1.value.dek_id);
    assert.equal(toHex(parsed.nonce), v1.value.nonce);
    assert.equal(
      toHex(await openValue(valueRef, h(v1.value.dek), h(v1.value.envelope))),
      v1.value.plaintext,
    );
  });

  it("KHS1: node:crypto AES-256-GCM with the recorded DEK and nonce rebuilds the envelope", () => {
    const cipher = createCipheriv("aes-256-gcm", h(v1.value.dek), h(v1.value.nonce));
    cipher.setAAD(h(v1.value.aad));
    const ct = Buffer.concat([
      cipher.update(h(v1.value.plaintext)),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    const rebuilt = concatBytes(
      utf8("KHS1"),
      Uint8Array.of(0x01),
      h(v1.value.dek_id),
      h(v1.value.nonce),
      ct,
    );
    assert.equal(toHex(rebuilt), v1.value.envelope);
  });

  for (const who of ["agent", "owner"] as const) {
    it(`KHW1 (${who}): the AAD is rebuilt, the wrap opens to the DEK and is rebuilt from its ephemeral`, async () => {
      const vector = v1.wraps[who];
      const keys = who === "agent" ? agentKeys.recipient : ownerEnc;
      const expectedId = who === "agent" ? `agent:${v1.agent_id}` : `owner:${v1.vault_id}`;
      assert.equal(vector.recipient_id, expectedId);
      assert.equal(vector.recipient_pk, toHex(keys.publicKey));
      const dekId = h(v1.value.dek_id);
      const aad = concatBytes(
        lpRef("keyhole/v1/dek-wrap"),
        lpRef(valueRef.vaultId),
        lpRef(valueRef.secretId),
        u64Ref(valueRef.version),
        lpRef(dekId),
        lpRef(vector.recipient_id),
        lpRef(keys.publicKey),
      );
      assert.equal(toHex(aad), vector.aad);
      assert.equal(
        toHex(
          encodeWrapAad(valueRef, dekId, {
            recipientId: vector.recipient_id,
            publicKey: keys.publicKey,
          }),
        ),
        vector.aad,
      );
      const dek = await unwrapDek(valueRef, dekId, vector.recipient_id, keys, h(vector.wrap));
      assert.equal(toHex(dek), v1.value.dek);
      assert.equal(toHex(await rebuildWrap(vector, h(v1.value.dek))), vector.wrap);
    });
  }

  function grantStatement(): GrantStatement {
    const g = v1.grant;
    return {
      vaultId: g.vault_id,
      secretId: g.secret_id,
      secretName: g.secret_name,
      version: g.version,
      dekId: h(g.dek_id),
      agentId: g.agent_id,
      recipientFingerprint: h(g.recipient_fpr),
      valueEnvelope: h(v1.value.envelope),
      wrap: h(v1.wraps.agent.wrap),
      issuedAt: g.issued_at,
      notAfter: g.not_after,
      allowedHosts: g.allowed_hosts,
    };
  }

  it("KHG1: the message is rebuilt byte for byte, the name bound after the secret id", async () => {
    const g = v1.grant;
    assert.equal(g.value_sha256, toHex(nodeSha256(h(v1.value.envelope))));
    assert.equal(g.wrap_sha256, toHex(nodeSha256(h(v1.wraps.agent.wrap))));
    assert.equal(g.recipient_fpr, toHex(nodeSha256(h(v1.token.x25519_pk)).subarray(0, 16)));
    assert.deepEqual(canonicalHosts(g.allowed_hosts), g.allowed_hosts);
    const message = concatBytes(
      lpRef("keyhole/v1/grant"),
      lpRef(g.vault_id),
      lpRef(g.secret_id),
      lpRef(g.secret_name),
      u64Ref(g.version),
      lpRef(h(g.dek_id)),
      lpRef(g.agent_id),
      h(g.recipient_fpr),
      h(g.value_sha256),
      h(g.wrap_sha256),
      u64Ref(g.issued_at),
      u64Ref(g.not_after),
      lpRef(g.allowed_hosts.join("\n")),
    );
    assert.equal(toHex(message), g.message);
    assert.equal(toHex(await encodeGrantMessage(grantStatement())), g.message);
  });

  it("KHG1: the signature is reproduced (Ed25519 is deterministic) and verifies", async () => {
    const owner = await importSigningKey(h(v1.owner.sign_seed));
    assert.equal(toHex(await signGrant(owner, grantStatement())), v1.grant.signature);
    assert.equal(
      await verifyGrant(h(v1.owner.sign_pk), grantStatement(), h(v1.grant.signature)),
      true,
    );
    const nodeSig = nodeSign(
      null,
      h(v1.grant.message),
      nodeEd25519(h(v1.owner.sign_seed)).privateKey,
    );
    assert.equal(nodeSig.toString("hex"), v1.grant.signature);
  });

  it("KHK1: the message and signature are reproduced and verify", async () => {
    const k = v1.agent_key;
    assert.equal(k.agent_pk, v1.token.x25519_pk);
    const statement = {
      vaultId: k.vault_id,
      agentId: k.agent_id,
      agentPublicKey: h(k.agent_pk),
      createdAt: k.created_at,
    };
    const message = concatBytes(
      lpRef("keyhole/v1/agent-key"),
      lpRef(k.vault_id),
      lpRef(k.agent_id),
      lpRef(h(k.agent_pk)),
      u64Ref(k.created_at),
    );
    assert.equal(toHex(message), k.message);
    assert.equal(toHex(encodeAgentKeyMessage(statement)), k.message);
    const owner = await importSigningKey(h(v1.owner.sign_seed));
    assert.equal(toHex(await signAgentKey(owner, statement)), k.signature);
    assert.equal(await verifyAgentKey(h(v1.owner.sign_pk), statement, h(k.signature)), true);
    assert.equal(
      nodeVerify(
        null,
        h(k.message),
        createPublicKey(nodeEd25519(h(v1.owner.sign_seed)).privateKey),
        h(k.signature),
      ),
      true,
    );
  });

  it("audit: canonical bytes, leaves and chained hashes of three entries (node:crypto SHA-256)", () => {
    let head = AUDIT_GENESIS;
    let reference: Uint8Array = new Uint8Array(32);
    assert.equal(v1.audit.entries.length, 3);
    for (const vector of v1.audit.entries) {
      const fields = auditFields(vector.fields);
      const f = vector.fields;
      const canonical = concatBytes(
        lpRef("keyhole/v1/audit-entry"),
        u64Ref(f.seq),
        u64Ref(f.ts),
        lpRef(f.request_id),
        lpRef(f.actor_type),
        lpRef(f.actor_id),
        lpRef(f.action),
        lpRef(f.result),
        lpRef(f.agent_id),
        lpRef(f.secret_id),
        u64Ref(f.secret_version),
        lpRef(f.client_ip),
        lpRef(f.user_agent),
        lpRef(f.detail),
      );
      assert.equal(toHex(canonical), vector.canonical);
      assert.equal(toHex(encodeAuditEntry(fields)), vector.canonical);
      const leaf = nodeSha256(concatBytes(Uint8Array.of(0), lpRef(canonical)));
      assert.equal(toHex(leaf), vector.leaf);
      assert.equal(toHex(auditLeaf(fields, sha256Sync)), vector.leaf);
      reference = nodeSha256(concatBytes(reference, leaf));
      head = chainAuditHash(head, fields, sha256Sync);
      assert.equal(toHex(reference), vector.entry_hash);
      assert.equal(toHex(head), vector.entry_hash);
    }
  });

  it("audit: the checkpoint bytes and the audit key's signature are reproduced", async () => {
    const c = v1.audit.checkpoint;
    const last = v1.audit.entries.at(-1);
    assert.equal(c.head, last?.entry_hash);
    const text = `keyhole/v1/audit\n${c.log_id}\n${c.size}\n${Buffer.from(h(c.head)).toString("base64")}\n`;
    assert.equal(toHex(utf8(text)), c.bytes);
    assert.equal(toHex(encodeCheckpoint(c.log_id, c.size, h(c.head))), c.bytes);
    const auditKey = await importSigningKey(h(c.audit_sign_seed));
    assert.equal(toHex(auditKey.publicKey), c.audit_pk);
    assert.equal(toHex(await sign(auditKey, h(c.bytes))), c.signature);
    assert.equal(await verify(h(c.audit_pk), h(c.bytes), h(c.signature)), true);
  });

  it("owner request: the message, signature and Authorization header are reproduced", async () => {
    const r = v1.owner_request;
    assert.equal(r.body_sha256, toHex(nodeSha256(h(r.body))));
    assert.equal(r.empty_body_sha256, toHex(nodeSha256(new Uint8Array(0))));
    const request = {
      vaultId: r.vault_id,
      method: r.method,
      pathWithQuery: r.path_with_query,
      timestamp: r.timestamp,
      nonce: h(r.nonce),
      bodyHash: h(r.body_sha256),
    };
    const message = concatBytes(
      lpRef("keyhole/v1/owner-request"),
      lpRef(r.vault_id),
      lpRef(r.method.toUpperCase()),
      lpRef(r.path_with_query),
      u64Ref(r.timestamp),
      lpRef(h(r.nonce)),
      h(r.body_sha256),
    );
    assert.equal(toHex(message), r.message);
    assert.equal(toHex(encodeOwnerRequestMessage(request)), r.message);
    const owner = await importSigningKey(h(v1.owner.sign_seed));
    assert.equal(toHex(await sign(owner, message)), r.signature);
    assert.equal(
      formatOwnerAuthorization(r.timestamp, h(r.nonce), h(r.signature)),
      r.authorization,
    );
    const parsed = parseOwnerAuthorization(r.authorization);
    assert.equal(parsed?.timestamp, r.timestamp);
    assert.equal(toHex(parsed?.signature ?? new Uint8Array(0)), r.signature);
  });

  it("init proof: the message and signature are reproduced and verify", async () => {
    const p = v1.init_proof;
    assert.equal(p.owner_sign_pk, v1.owner.sign_pk);
    assert.equal(p.owner_enc_pk, v1.owner.enc_pk);
    const message = concatBytes(
      lpRef("keyhole/v1/init"),
      lpRef(p.vault_id),
      lpRef(p.bootstrap_code),
      lpRef(h(p.owner_sign_pk)),
      lpRef(h(p.owner_enc_pk)),
    );
    assert.equal(toHex(message), p.message);
    assert.equal(
      toHex(
        encodeInitProofMessage(p.vault_id, p.bootstrap_code, h(p.owner_sign_pk), h(p.owner_enc_pk)),
      ),
      p.message,
    );
    const owner = await importSigningKey(h(v1.owner.sign_seed));
    assert.equal(toHex(await sign(owner, message)), p.signature);
    assert.equal(await verify(h(p.owner_sign_pk), message, h(p.signature)), true);
  });
});
