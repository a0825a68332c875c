/**
 * Strict validation of the agent answers of docs/api.md, before any field is used. Every byte
 * string must be canonical base64url of the exact length its format fixes, every id must have its
 * prefix, every number must be a safe integer in range. Anything else is `untrusted_server`,
 * naming the field but never quoting it. Unknown extra fields are ignored: nothing outside this
 * shape is ever read.
 */
import {
  isCanonicalHosts,
  isId,
  isValidName,
  parseValueEnvelope,
  parseWrap,
  tryDecodeBase64url,
  WRAP_LENGTH,
} from "@keyhole/core";
import { isRecord, malformedAnswer } from "./errors.js";

/** `GET /v1/agent/secrets/:name`, decoded. Nothing here is trusted until the grant verifies. */
export interface SecretAnswer {
  readonly vaultId: string;
  readonly agentId: string;
  readonly ownerSignPk: Uint8Array;
  readonly secretId: string;
  readonly name: string;
  readonly version: number;
  /** `KHS1` bytes, already checked for magic and suite. */
  readonly value: Uint8Array;
  /** The `dek_id` inside `value`. */
  readonly dekId: Uint8Array;
  /** `KHW1` bytes, already checked for magic, suite and length. */
  readonly wrap: Uint8Array;
  readonly issuedAt: number;
  readonly notAfter: number;
  readonly allowedHosts: readonly string[];
  readonly sig: Uint8Array;
}

/** What the owner signed about a secret, handed to `vault.use()` callbacks. Not secret. */
export interface SecretInfo {
  readonly name: string;
  readonly version: number;
  /** ms since the epoch; 0 means the grant does not expire. */
  readonly notAfter: number;
  /** The only hosts (`host` or `host:port`) the owner allows this value to be sent to. */
  readonly allowedHosts: readonly string[];
}

/** A secret this agent may read, as `list()` returns it. */
export interface GrantedSecret {
  readonly name: string;
  readonly version: number;
}

const ED25519_PUBLIC_KEY_LENGTH = 32;
const ED25519_SIGNATURE_LENGTH = 64;
const MAX_HOSTS = 256;

/** Validates and decodes a secret answer, or throws `untrusted_server`. */
export function parseSecretAnswer(json: unknown): SecretAnswer {
  if (!isRecord(json)) throw malformedAnswer("not an object");
  const grant = json.grant;
  if (!isRecord(grant)) throw malformedAnswer("grant");
  const value = bytesField(json, "value");
  let dekId: Uint8Array;
  try {
    dekId = parseValueEnvelope(value).dekId;
  } catch {
    throw malformedAnswer("value");
  }
  const wrap = bytesField(json, "wrap", WRAP_LENGTH);
  try {
    parseWrap(wrap);
  } catch {
    throw malformedAnswer("wrap");
  }
  return {
    vaultId: idField(json, "vault_id", "vault"),
    agentId: idField(json, "agent_id", "agent"),
    ownerSignPk: bytesField(json, "owner_sign_pk", ED25519_PUBLIC_KEY_LENGTH),
    secretId: idField(json, "secret_id", "secret"),
    name: nameField(json),
    version: integerField(json, "version", 1),
    value,
    dekId,
    wrap,
    issuedAt: integerField(grant, "issued_at", 0, "grant.issued_at"),
    notAfter: integerField(grant, "not_after", 0, "grant.not_after"),
    allowedHosts: hostsField(grant),
    sig: bytesField(grant, "sig", ED25519_SIGNATURE_LENGTH, "grant.sig"),
  };
}

/** Validates `GET /v1/agent/secrets`, or throws `untrusted_server`. */
export function parseSecretList(json: unknown): GrantedSecret[] {
  if (!isRecord(json) || !Array.isArray(json.secrets)) throw malformedAnswer("secrets");
  const seen = new Set<string>();
  return json.secrets.map((entry: unknown) => {
    if (!isRecord(entry)) throw malformedAnswer("secrets[]");
    const name = nameField(entry, "secrets[].name");
    if (seen.has(name)) throw malformedAnswer("secrets[].name");
    seen.add(name);
    return { name, version: integerField(entry, "version", 1, "secrets[].version") };
  });
}

function bytesField(
  record: Record<string, unknown>,
  key: string,
  length?: number,
  label = key,
): Uint8Array {
  const text = record[key];
  const bytes = typeof text === "string" ? tryDecodeBase64url(text) : null;
  if (bytes === null || (length !== undefined && bytes.length !== length)) {
    throw malformedAnswer(label);
  }
  return bytes;
}

function idField(
  record: Record<string, unknown>,
  key: string,
  kind: "vault" | "agent" | "secret",
): string {
  const value = record[key];
  if (!isId(kind, value)) throw malformedAnswer(key);
  return value;
}

function nameField(record: Record<string, unknown>, label = "name"): string {
  const value = record.name;
  if (!isValidName(value)) throw malformedAnswer(label);
  return value;
}

function integerField(
  record: Record<string, unknown>,
  key: string,
  min: number,
  label = key,
): number {
  const value = record[key];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw malformedAnswer(label);
  }
  return value;
}

function hostsField(grant: Record<string, unknown>): string[] {
  const hosts = grant.allowed_hosts;
  if (
    !Array.isArray(hosts) ||
    hosts.length > MAX_HOSTS ||
    !hosts.every((h): h is string => typeof h === "string") ||
    !isCanonicalHosts(hosts)
  ) {
    throw malformedAnswer("grant.allowed_hosts");
  }
  return [...hosts];
}
