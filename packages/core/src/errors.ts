/**
 * The one error type of Keyhole, with a string code from a closed table.
 *
 * Codes with an HTTP status travel on the wire; codes with status 0 are raised on the client side
 * only (parsing, verification, transport) and never leave the process as an HTTP answer. Messages
 * are fixed, short and never contain secret material, request bodies or SQL parameters.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  not_initialized: 409,
  already_initialized: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  storage_unavailable: 503,
  // Client-side only.
  invalid_token: 0,
  invalid_envelope: 0,
  decrypt_failed: 0,
  untrusted_server: 0,
  rollback_detected: 0,
  grant_expired: 0,
  insecure_transport: 0,
  network_error: 0,
  config_error: 0,
  bad_passphrase: 0,
  usage: 0,
  unsafe_environment: 0,
} as const;

/** Every code Keyhole can raise. */
export type KeyholeErrorCode = keyof typeof ERROR_STATUS;

/** Codes the server may put in an HTTP answer. */
export type WireErrorCode = {
  [K in KeyholeErrorCode]: (typeof ERROR_STATUS)[K] extends 0 ? never : K;
}[KeyholeErrorCode];

const BRAND = Symbol.for("keyhole.error");

/** The single error class. `code` is the contract; `message` is for humans. */
export class KeyholeError extends Error {
  readonly code: KeyholeErrorCode;
  readonly [BRAND] = true;

  constructor(code: KeyholeErrorCode, message?: string, options?: { retryAfterSeconds?: number }) {
    super(message ?? defaultMessage(code));
    this.name = "KeyholeError";
    this.code = code;
    if (options?.retryAfterSeconds !== undefined)
      this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** Seconds the caller should wait, for `rate_limited` (an own property only when set). */
  declare retryAfterSeconds?: number;

  /** HTTP status for wire codes, 500 for client-side codes (which must never reach the wire). */
  get status(): number {
    const status: number = ERROR_STATUS[this.code];
    return status === 0 ? 500 : status;
  }
}

/** True for a KeyholeError, even one created by another copy of this package (another bundle). */
export function isKeyholeError(value: unknown): value is KeyholeError {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<symbol, unknown>)[BRAND] === true
  );
}

/** True when `code` is in the closed table. */
export function isKeyholeErrorCode(code: unknown): code is KeyholeErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_STATUS, code);
}

/** True when `code` may appear in an HTTP error body. */
export function isWireErrorCode(code: unknown): code is WireErrorCode {
  return isKeyholeErrorCode(code) && ERROR_STATUS[code] !== 0;
}

function defaultMessage(code: KeyholeErrorCode): string {
  return DEFAULT_MESSAGES[code];
}

const DEFAULT_MESSAGES: Record<KeyholeErrorCode, string> = {
  bad_request: "the request is malformed",
  unauthenticated: "authentication failed",
  forbidden: "not allowed for this credential",
  not_found: "not found",
  conflict: "the resource changed; re-read and retry",
  not_initialized: "the server has no owner yet; run `keyhole init`",
  already_initialized: "the server already has an owner",
  payload_too_large: "the request body is too large",
  rate_limited: "too many failed attempts; retry later",
  internal: "internal error",
  unavailable: "the server is unavailable",
  storage_unavailable:
    "the server cannot write to its database (disk full or read-only); nothing was changed, " +
    "retry later",
  invalid_token: "the agent token is malformed",
  invalid_envelope: "invalid envelope",
  decrypt_failed: "decryption failed",
  untrusted_server: "the server's answer failed verification",
  rollback_detected: "the server served an older version than already seen",
  grant_expired: "the grant has expired",
  insecure_transport: "refusing plain http:// to a non-loopback address",
  network_error: "could not reach the Keyhole server",
  config_error: "Keyhole is not configured",
  bad_passphrase: "wrong passphrase or damaged key file",
  usage: "usage error",
  unsafe_environment: "code could have been injected into this process",
};
