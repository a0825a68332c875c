/**
 * Turns what comes back from the server, or the lack of it, into a `KeyholeError` with a code
 * from core's closed table. The server is not trusted: its error `message` is never copied (a
 * buggy or hostile server could echo the Authorization header into it), only a code we know, and
 * only when the HTTP status agrees with it. An unknown code, or any answer we cannot make sense
 * of, is `untrusted_server`.
 */
import { ERROR_STATUS, isWireErrorCode, KeyholeError } from "@keyhole/core";

/** Longest `retry-after` we pass on (a day): a larger one is more likely garbage than advice. */
const MAX_RETRY_AFTER_SECONDS = 86_400;

/** Statuses a proxy in front of the server answers with its own, non-JSON, body. */
const PROXY_UNAVAILABLE = new Set([502, 503, 504]);

/** The error for a non-200 answer. `body` is parsed but never quoted. */
export function errorFromResponse(
  status: number,
  body: Uint8Array,
  retryAfter: string | null,
): KeyholeError {
  const code = readErrorCode(body);
  if (code === null) {
    if (PROXY_UNAVAILABLE.has(status)) {
      return new KeyholeError("unavailable", `the Keyhole server is unavailable (HTTP ${status})`);
    }
    return untrustedServer(`unexpected HTTP ${status} without a Keyhole error body`);
  }
  if (!isWireErrorCode(code)) {
    return untrustedServer(`unknown error code in an HTTP ${status} answer`);
  }
  if (ERROR_STATUS[code] !== status) {
    return untrustedServer(`error code does not match HTTP ${status}`);
  }
  const message = `${HINTS[code] ?? new KeyholeError(code).message} (HTTP ${status})`;
  if (RETRYABLE.has(code)) {
    const seconds = parseRetryAfter(retryAfter);
    if (seconds !== undefined)
      return new KeyholeError(code, message, { retryAfterSeconds: seconds });
  }
  return new KeyholeError(code, message);
}

/** `untrusted_server` with a message that names what failed, never what was received. */
export function untrustedServer(what: string): KeyholeError {
  return new KeyholeError("untrusted_server", `the server's answer failed verification: ${what}`);
}

/** A malformed field in an answer: the field's name is ours, its content is not shown. */
export function malformedAnswer(field: string): KeyholeError {
  return untrustedServer(`malformed answer (${field})`);
}

/**
 * `network_error` for a failed connection. `reason` is an errno-style code such as
 * `ECONNREFUSED`, kept only when it looks like one, so no other text from below gets in.
 */
export function networkError(origin: string, reason?: unknown): KeyholeError {
  const code =
    typeof reason === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(reason) ? ` (${reason})` : "";
  return new KeyholeError(
    "network_error",
    `could not reach the Keyhole server at ${origin}${code}`,
  );
}

/** `network_error` for a request that outlived its timeout. */
export function timeoutError(origin: string, timeoutMs: number): KeyholeError {
  return new KeyholeError(
    "network_error",
    `the Keyhole server at ${origin} did not answer within ${timeoutMs} ms`,
  );
}

// Friendlier words for the answers an agent actually meets; the rest use core's defaults.
/** Answers that say when to try again (`Retry-After`), which we pass on to the caller. */
const RETRYABLE: ReadonlySet<string> = new Set([
  "rate_limited",
  "unavailable",
  "storage_unavailable",
]);

const HINTS: Partial<Record<string, string>> = {
  unauthenticated: "the server rejected the agent token (wrong, rotated, revoked or expired)",
  forbidden: "the agent token may not do this",
  not_found: "no such secret, or it is not granted to this agent",
};

function readErrorCode(body: Uint8Array): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return null;
  }
  if (!isRecord(parsed) || !isRecord(parsed.error)) return null;
  const code = parsed.error.code;
  return typeof code === "string" ? code : null;
}

function parseRetryAfter(value: string | null): number | undefined {
  // api.md: seconds. The HTTP-date form is not used by Keyhole and is ignored.
  if (value === null || !/^[0-9]{1,6}$/.test(value.trim())) return undefined;
  const seconds = Number(value.trim());
  return seconds <= MAX_RETRY_AFTER_SECONDS ? seconds : undefined;
}

/** A plain JSON object (not an array, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
