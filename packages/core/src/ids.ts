/**
 * Identifiers and names (docs/api.md). Ids carry a typed prefix, like the token's `kh1_`, so a
 * string says what it is: `vlt_`, `agt_`, `sec_` + base64url of 16 random bytes.
 */
import { encodeBase64url, tryDecodeBase64url } from "./base64url.js";
import { randomBytes } from "./bytes.js";

/** The id kinds and their prefixes. */
export const ID_PREFIX = { vault: "vlt_", agent: "agt_", secret: "sec_" } as const;
export type IdKind = keyof typeof ID_PREFIX;

/** A new random id of the given kind. */
export function newId(kind: IdKind): string {
  return ID_PREFIX[kind] + encodeBase64url(randomBytes(16));
}

/** True for a well-formed id of the given kind (prefix + canonical base64url of 16 bytes). */
export function isId(kind: IdKind, value: unknown): value is string {
  if (typeof value !== "string" || !value.startsWith(ID_PREFIX[kind])) return false;
  return tryDecodeBase64url(value.slice(4))?.length === 16;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** True for a valid secret or agent name: 1–128 of `A-Z a-z 0-9 . _ -`, not starting with a symbol. */
export function isValidName(value: unknown): value is string {
  return typeof value === "string" && NAME.test(value);
}
