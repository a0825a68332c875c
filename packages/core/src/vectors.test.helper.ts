/**
 * Loading and independent re-computation for the golden vectors (vectors.test.ts,
 * vectors-negative.test.ts): the shape of test/vectors/v1*.json, and references for each
 * primitive built on node:crypto rather than on this package's own code (HPKE through the
 * node:crypto implementation in hpke-reference.test.helper.ts).
 */
import { createHash, createHmac, createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { referenceSeal } from "./hpke-reference.test.helper.js";
import {
  type AuditEntryView,
  type AuditFields,
  concatBytes,
  type KeyholeErrorCode,
  u32,
  utf8,
} from "./index.js";

// The shape of the vector files (byte strings are lower-case hex).

export interface WrapVector {
  recipient_id: string;
  recipient_pk: string;
  ephemeral_ikm: string;
  aad: string;
  wrap: string;
}
export interface AuditVector {
  /** The hashed fields, in the JSON shape of an audit entry on the wire. */
  fields: Omit<AuditEntryView, "hash">;
  canonical: string;
  leaf: string;
  entry_hash: string;
}
export interface V1 {
  owner: {
    sign_seed: string;
    sign_pk: string;
    fingerprint: string;
    enc_ikm: string;
    enc_pk: string;
  };
  vault_id: string;
  agent_id: string;
  token: {
    token_id: string;
    seed: string;
    owner_fpr: string;
    crc32: string;
    text: string;
    auth_key: string;
    x25519_ikm: string;
    x25519_pk: string;
    authorization: string;
    verifier_message: string;
  };
  value: {
    vault_id: string;
    secret_id: string;
    version: number;
    plaintext: string;
    dek: string;
    dek_id: string;
    nonce: string;
    aad: string;
    envelope: string;
  };
  wraps: { agent: WrapVector; owner: WrapVector };
  grant: {
    vault_id: string;
    secret_id: string;
    secret_name: string;
    version: number;
    dek_id: string;
    agent_id: string;
    recipient_fpr: string;
    value_sha256: string;
    wrap_sha256: string;
    issued_at: number;
    not_after: number;
    allowed_hosts: string[];
    message: string;
    signature: string;
  };
  agent_key: {
    vault_id: string;
    agent_id: string;
    agent_pk: string;
    created_at: number;
    message: string;
    signature: string;
  };
  audit: {
    entries: AuditVector[];
    checkpoint: {
      log_id: string;
      size: number;
      head: string;
      bytes: string;
      audit_sign_seed: string;
      audit_pk: string;
      signature: string;
    };
  };
  owner_request: {
    vault_id: string;
    method: string;
    path_with_query: string;
    timestamp: number;
    nonce: string;
    body: string;
    body_sha256: string;
    empty_body_sha256: string;
    message: string;
    signature: string;
    authorization: string;
  };
  init_proof: {
    vault_id: string;
    bootstrap_code: string;
    owner_sign_pk: string;
    owner_enc_pk: string;
    message: string;
    signature: string;
  };
}
export interface Negative {
  value: {
    vault_id: string;
    secret_id: string;
    version: number;
    plaintext: string;
    dek: string;
    dek_id: string;
    envelope: string;
    cases: { name: string; envelope: string; error: KeyholeErrorCode }[];
  };
  wrap: {
    recipient_id: string;
    ephemeral_ikm: string;
    wrap: string;
    cases: { name: string; wrap: string; error: KeyholeErrorCode }[];
  };
  token: { cases: { name: string; text: string }[] };
  base64url: { cases: { name: string; text: string }[] };
}

// Relative to the compiled file: packages/core/dist/vectors.test.js → packages/core/test/vectors/.
export function load<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../test/vectors/${name}`, import.meta.url), "utf8")) as T;
}

export const v1 = load<V1>("v1.json");
export const negative = load<Negative>("v1-negative.json");

export const h = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));
export const nodeSha256 = (data: Uint8Array): Uint8Array =>
  new Uint8Array(createHash("sha256").update(data).digest());

// Independent references, built on node:crypto only.

export function nodeEd25519(seed: Uint8Array) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return { privateKey, publicKey: new Uint8Array(spki.subarray(spki.length - 32)) };
}

/** RFC 9180 §7.1.3 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256), on node:crypto HMAC. */
export function rfc9180DerivePublicKey(ikm: Uint8Array): Uint8Array {
  const suiteId = concatBytes(utf8("KEM"), Uint8Array.of(0x00, 0x20));
  const hmac = (key: Uint8Array, data: Uint8Array) =>
    new Uint8Array(createHmac("sha256", key).update(data).digest());
  const prk = hmac(new Uint8Array(0), concatBytes(utf8("HPKE-v1"), suiteId, utf8("dkp_prk"), ikm));
  const info = concatBytes(Uint8Array.of(0, 32), utf8("HPKE-v1"), suiteId, utf8("sk"));
  const sk = hmac(prk, concatBytes(info, Uint8Array.of(1)));
  const der = Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), sk]);
  const spki = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export(
    {
      format: "der",
      type: "spki",
    },
  );
  return new Uint8Array(spki.subarray(spki.length - 32));
}

/** Rebuilds a KHW1 from its parts with the node:crypto HPKE, using the recorded ephemeral. */
export function rebuildWrap(vector: WrapVector, dek: Uint8Array): Uint8Array {
  const pk = h(vector.recipient_pk);
  const { enc, ct } = referenceSeal(
    pk,
    utf8("keyhole/v1/dek-wrap"),
    h(vector.aad),
    dek,
    h(vector.ephemeral_ikm),
  );
  return concatBytes(utf8("KHW1"), Uint8Array.of(0x01), nodeSha256(pk).subarray(0, 16), enc, ct);
}

export const lpRef = (data: Uint8Array | string): Uint8Array => {
  const bytes = typeof data === "string" ? utf8(data) : data;
  return concatBytes(u32(bytes.length), bytes);
};
export const u64Ref = (n: number): Uint8Array => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
};

export function auditFields(vector: AuditVector["fields"]): AuditFields {
  return {
    seq: vector.seq,
    ts: vector.ts,
    requestId: vector.request_id,
    actorType: vector.actor_type,
    actorId: vector.actor_id,
    action: vector.action,
    result: vector.result,
    agentId: vector.agent_id,
    secretId: vector.secret_id,
    secretVersion: vector.secret_version,
    clientIp: vector.client_ip,
    userAgent: vector.user_agent,
    detail: vector.detail,
  };
}
