/**
 * The grant statement `KHG1`, signed by the owner (FORMATS.md), with one addition: the secret's
 * name is bound next to its id. Agents ask for secrets by name, and without the name in the
 * signed statement a malicious server could answer a request for `openai-api-key` with another
 * secret the agent is also granted (docs/format.md, "Deviations").
 *
 *   msg = LP("keyhole/v1/grant") ‖ LP(vault_id) ‖ LP(secret_id) ‖ LP(secret_name) ‖ u64(version)
 *         ‖ LP(dek_id) ‖ LP(agent_id) ‖ recipient_fpr[16] ‖ SHA-256(KHS1) ‖ SHA-256(KHW1)
 *         ‖ u64(issued_at_ms) ‖ u64(not_after_ms or 0) ‖ LP(allowed_hosts joined by "\n")
 */
import { concatBytes, lp, u64 } from "./bytes.js";
import { KeyholeError } from "./errors.js";
import { type SigningKey, sha256, sign, verify } from "./keys.js";

/** Everything a grant signature covers. */
export interface GrantStatement {
  readonly vaultId: string;
  readonly secretId: string;
  readonly secretName: string;
  readonly version: number;
  readonly dekId: Uint8Array;
  readonly agentId: string;
  /** fpr of the agent's X25519 public key. */
  readonly recipientFingerprint: Uint8Array;
  /** The `KHS1` envelope bytes (hashed into the statement). */
  readonly valueEnvelope: Uint8Array;
  /** The agent's `KHW1` wrap bytes (hashed into the statement). */
  readonly wrap: Uint8Array;
  readonly issuedAt: number;
  /** 0 means no expiry. */
  readonly notAfter: number;
  /** Canonical: lower-case, sorted, unique (see `canonicalHosts`). */
  readonly allowedHosts: readonly string[];
}

const HOST =
  /^(?=.{1,253}(:|$))[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,4})?$/;

/** True for `host` or `host:port` in lower case, the only form a grant may carry. */
export function isValidHost(host: string): boolean {
  if (typeof host !== "string" || !HOST.test(host)) return false;
  const port = host.split(":")[1];
  return port === undefined || Number(port) <= 65535;
}

/** Lower-cases, sorts and de-duplicates a host list; throws `bad_request` on an invalid host. */
export function canonicalHosts(hosts: readonly string[]): string[] {
  const lowered = hosts.map((h) => h.trim().toLowerCase());
  for (const host of lowered) {
    if (!isValidHost(host)) throw new KeyholeError("bad_request", "invalid host in allowed hosts");
  }
  return [...new Set(lowered)].sort();
}

/** True when the list is already canonical (signers and verifiers insist on one form). */
export function isCanonicalHosts(hosts: readonly string[]): boolean {
  try {
    const canonical = canonicalHosts(hosts);
    return canonical.length === hosts.length && canonical.every((h, i) => h === hosts[i]);
  } catch {
    return false;
  }
}

/** The bytes the owner signs. */
export async function encodeGrantMessage(grant: GrantStatement): Promise<Uint8Array> {
  if (!isCanonicalHosts(grant.allowedHosts)) throw new KeyholeError("invalid_envelope");
  if (grant.recipientFingerprint.length !== 16) throw new KeyholeError("invalid_envelope");
  return concatBytes(
    lp("keyhole/v1/grant"),
    lp(grant.vaultId),
    lp(grant.secretId),
    lp(grant.secretName),
    u64(grant.version),
    lp(grant.dekId),
    lp(grant.agentId),
    grant.recipientFingerprint,
    await sha256(grant.valueEnvelope),
    await sha256(grant.wrap),
    u64(grant.issuedAt),
    u64(grant.notAfter),
    lp(grant.allowedHosts.join("\n")),
  );
}

/** Signs a grant with the owner's key. */
export async function signGrant(owner: SigningKey, grant: GrantStatement): Promise<Uint8Array> {
  return sign(owner, await encodeGrantMessage(grant));
}

/** Verifies a grant signature; a malformed statement is simply `false`. */
export async function verifyGrant(
  ownerPublicKey: Uint8Array,
  grant: GrantStatement,
  signature: Uint8Array,
): Promise<boolean> {
  let message: Uint8Array;
  try {
    message = await encodeGrantMessage(grant);
  } catch {
    return false;
  }
  return verify(ownerPublicKey, message, signature);
}
