/**
 * @keyhole/core: the v1 formats and the crypto behind them. No I/O and no `node:*` imports, so
 * the SDK can depend on it anywhere WebCrypto runs. This file is the public contract.
 */

export type { AgentKeyStatement } from "./agent-key.js";
export { encodeAgentKeyMessage, signAgentKey, verifyAgentKey } from "./agent-key.js";
export type { AuditChainResult, AuditChainStart } from "./audit-chain.js";
export { AuditChainVerifier } from "./audit-chain.js";
export type { AuditActorType, AuditFields, Sha256Sync } from "./audit-hash.js";
export {
  AUDIT_GENESIS,
  auditFieldsFromView,
  auditLeaf,
  chainAuditHash,
  encodeAuditEntry,
  encodeCheckpoint,
} from "./audit-hash.js";
export { decodeBase64url, encodeBase64url, tryDecodeBase64url } from "./base64url.js";
export {
  concatBytes,
  decodeUtf8,
  equalBytes,
  lp,
  randomBytes,
  toHex,
  u32,
  u64,
  utf8,
  zeroize,
} from "./bytes.js";
export type { Cidr, CidrParse } from "./cidr.js";
export { canonicalCidrs, cidrContains, isCanonicalCidrs, MAX_CIDRS, parseCidr } from "./cidr.js";
export { crc32 } from "./crc32.js";
export type { SecretVersionRef, ValueEnvelope } from "./envelope.js";
export {
  DEK_ID_LENGTH,
  DEK_LENGTH,
  encodeValueAad,
  openValue,
  parseValueEnvelope,
  SUITE_V1,
  sealValue,
  VALUE_MAGIC,
} from "./envelope.js";
export type { KeyholeErrorCode, WireErrorCode } from "./errors.js";
export {
  ERROR_STATUS,
  isKeyholeError,
  isKeyholeErrorCode,
  isWireErrorCode,
  KeyholeError,
} from "./errors.js";
export type { GrantStatement } from "./grant.js";
export {
  canonicalHosts,
  encodeGrantMessage,
  isCanonicalHosts,
  isValidHost,
  signGrant,
  verifyGrant,
} from "./grant.js";
export type { RecipientKeyPair } from "./hpke.js";
export { deriveRecipientKeyPair, hpkeOpen, hpkeSeal } from "./hpke.js";
export type { IdKind } from "./ids.js";
export { ID_PREFIX, isId, isValidName, newId } from "./ids.js";
export { formatIpAddress, parseIpAddress } from "./ip-address.js";
export type { SigningKey } from "./keys.js";
export {
  fingerprint,
  generateSigningSeed,
  hkdfSha256,
  importSigningKey,
  label,
  sha256,
  sign,
  verify,
} from "./keys.js";
export type { OwnerRequest } from "./owner-request.js";
export {
  encodeInitProofMessage,
  encodeOwnerRequestMessage,
  formatOwnerAuthorization,
  OWNER_REQUEST_WINDOW_MS,
  parseOwnerAuthorization,
} from "./owner-request.js";
export type { AgentKeys } from "./token.js";
export {
  AgentToken,
  decodeTokenId,
  formatAgentAuthorization,
  parseAgentAuthorization,
  parseToken,
  TOKEN_LENGTH,
  TOKEN_PATTERN,
  TOKEN_PREFIX,
  verifierMessage,
} from "./token.js";
export type * from "./wire.js";
export type { WrapRecipient } from "./wrap.js";
export {
  agentRecipientId,
  encodeWrapAad,
  ownerRecipientId,
  parseWrap,
  unwrapDek,
  WRAP_LENGTH,
  WRAP_MAGIC,
  wrapDek,
} from "./wrap.js";
