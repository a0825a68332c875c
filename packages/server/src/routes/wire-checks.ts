/**
 * The request bodies of docs/api.md as strict checks. Sizes: public keys 32 bytes, signatures
 * 64, token ids 16, auth keys 32, `KHW1` wraps exactly 101, `KHS1` values from their 49-byte
 * minimum up to what fits in a body.
 */
import { WRAP_LENGTH } from "@keyhole/core";
import {
  array,
  b64u,
  type Checked,
  cidrs,
  hosts,
  id,
  int,
  name,
  nullable,
  object,
  str,
} from "../validate.js";

const MIN_VALUE_BYTES = 4 + 1 + 16 + 12 + 16;
const MAX_VALUE_BYTES = 192 * 1024;
/** Grants in one upload; 1,000 fit in the 512 KiB body of these routes (http/body.ts). */
const MAX_GRANTS = 1000;

/** A read budget: at most a billion reads, 0 for no limit. */
export const MAX_USES_LIMIT = 1_000_000_000;

const grantUploadShape = {
  agent_id: id("agent"),
  secret_id: id("secret"),
  version: int(1),
  wrap: b64u(WRAP_LENGTH),
  issued_at: int(),
  not_after: int(),
  allowed_hosts: hosts,
  sig: b64u(64),
};

/** `GrantUpload`. */
export const grantUploadCheck = object(grantUploadShape);
export type GrantUploadBody = Checked<typeof grantUploadCheck>;

/** `GrantAdd`: an upload and its read budget. */
export const grantAddCheck = object({ ...grantUploadShape, max_uses: int(0, MAX_USES_LIMIT) });

/** `POST /v1/init`. */
export const initCheck = object({
  bootstrap_code: str(256),
  owner_sign_pk: b64u(32),
  owner_enc_pk: b64u(32),
  proof: b64u(64),
});

/** `AgentCreate`. */
export const agentCreateCheck = object({
  id: id("agent"),
  name,
  enc_pk: b64u(32),
  created_at: int(),
  key_sig: b64u(64),
  token_id: b64u(16),
  auth_key: b64u(32),
  expires_at: nullable(int()),
  allowed_cidrs: cidrs,
  grants: array(grantUploadCheck, MAX_GRANTS),
});

/** `AgentRotate`. */
export const agentRotateCheck = object({
  enc_pk: b64u(32),
  created_at: int(),
  key_sig: b64u(64),
  token_id: b64u(16),
  auth_key: b64u(32),
  grants: array(grantUploadCheck, MAX_GRANTS),
});

/** `SecretPut`. */
export const secretPutCheck = object({
  id: id("secret"),
  expected_version: int(0),
  version: int(1),
  value: b64u({ min: MIN_VALUE_BYTES, max: MAX_VALUE_BYTES }),
  owner_wrap: b64u(WRAP_LENGTH),
  owner_sig: b64u(64),
  grants: array(grantUploadCheck, MAX_GRANTS),
});
