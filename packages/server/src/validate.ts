/**
 * A small strict validator for request bodies: exact object shapes (unknown and missing fields
 * are errors), exact types, safe integers, canonical base64url (core `decodeBase64url`), names,
 * ids and canonical host lists. Every failure is `bad_request` naming the field path we built —
 * never the value, nor an unknown key the client sent.
 */
import {
  decodeBase64url,
  type IdKind,
  isCanonicalCidrs,
  isCanonicalHosts,
  isId,
  isValidName,
  KeyholeError,
  MAX_CIDRS,
} from "@keyhole/core";

/** Checks `value` at `path` and returns it typed, or throws `bad_request`. */
export type Check<T> = (value: unknown, path: string) => T;

/** The type a check produces. */
export type Checked<C> = C extends Check<infer T> ? T : never;

function fail(path: string, what: string): never {
  throw new KeyholeError("bad_request", `${path}: ${what}`);
}

/** A string of at most `max` UTF-16 code units. */
export function str(max = 1024): Check<string> {
  return (value, path) => {
    if (typeof value !== "string") fail(path, "expected a string");
    if (value.length > max) fail(path, "too long");
    return value;
  };
}

/** A safe integer in `[min, max]`. */
export function int(min = 0, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return (value, path) => {
    if (typeof value !== "number" || !Number.isSafeInteger(value))
      fail(path, "expected an integer");
    if (value < min || value > max) fail(path, "out of range");
    return value;
  };
}

/** A literal `true`/`false`. */
export const bool: Check<boolean> = (value, path) => {
  if (typeof value !== "boolean") fail(path, "expected a boolean");
  return value;
};

/** `null` or what `check` accepts. */
export function nullable<T>(check: Check<T>): Check<T | null> {
  return (value, path) => (value === null ? null : check(value, path));
}

/** Canonical unpadded base64url, decoded; `length` exact or `{ min, max }` in bytes. */
export function b64u(length: number | { min: number; max: number }): Check<Uint8Array> {
  return (value, path) => {
    if (typeof value !== "string") fail(path, "expected a base64url string");
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64url(value);
    } catch {
      fail(path, "invalid base64url");
    }
    const ok =
      typeof length === "number"
        ? bytes.length === length
        : bytes.length >= length.min && bytes.length <= length.max;
    if (!ok) fail(path, "wrong length");
    return bytes;
  };
}

/** A secret or agent name. */
export const name: Check<string> = (value, path) => {
  if (!isValidName(value)) fail(path, "invalid name");
  return value;
};

/** An id of the given kind (`agt_…`, `sec_…`, `vlt_…`). */
export function id(kind: IdKind): Check<string> {
  return (value, path) => {
    if (!isId(kind, value)) fail(path, `invalid ${kind} id`);
    return value;
  };
}

/** A canonical host list: lower-case, sorted, unique, valid hosts (what grants sign). */
export const hosts: Check<string[]> = (value, path) => {
  const list = array(str(260), 64)(value, path);
  if (!isCanonicalHosts(list)) fail(path, "hosts must be valid, lower-case, sorted and unique");
  return list;
};

/** A canonical CIDR list: valid networks, canonical text, sorted and unique. */
export const cidrs: Check<string[]> = (value, path) => {
  const list = array(str(64), MAX_CIDRS)(value, path);
  if (!isCanonicalCidrs(list)) fail(path, "ranges must be valid, canonical, sorted and unique");
  return list;
};

/** An array of at most `max` items, each checked. */
export function array<T>(item: Check<T>, max: number): Check<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) fail(path, "expected an array");
    if (value.length > max) fail(path, "too many items");
    return value.map((v, i) => item(v, `${path}[${i}]`));
  };
}

/** An object with exactly these fields: none missing, none extra. */
export function object<S extends Record<string, Check<unknown>>>(
  shape: S,
): Check<{ [K in keyof S]: Checked<S[K]> }> {
  const keys = Object.keys(shape);
  return (value, path) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      fail(path, "expected an object");
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!Object.hasOwn(shape, key)) fail(path, "unknown field");
    }
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      if (!Object.hasOwn(record, key)) fail(`${path}.${key}`, "missing");
      out[key] = (shape[key] as Check<unknown>)(record[key], `${path}.${key}`);
    }
    return out as { [K in keyof S]: Checked<S[K]> };
  };
}

/** Runs a check on a parsed body (`undefined` when the body was empty). */
export function checkBody<T>(body: unknown, check: Check<T>): T {
  if (body === undefined) fail("body", "missing");
  return check(body, "body");
}

/** For routes that take no body: nothing, or an empty JSON object. */
export function checkNoBody(body: unknown): void {
  if (body === undefined) return;
  object({})(body, "body");
}
