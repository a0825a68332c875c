/**
 * The server's answers checked against this machine's pins (pins.ts) before anything is
 * wrapped (security review H2). The `KHK1` check alone is not enough: an owner signature over an
 * agent key never expires, so it stays valid for a revoked agent and for the key an agent had
 * before a rotate. Here the pins decide who gets a wrap, for which key and with which limits;
 * the server's lists only have to agree with them, else `untrusted_server` and nothing is
 * wrapped.
 */
import { encodeBase64url, fingerprint, KeyholeError, type SecretGrantee } from "@keyhole/core";
import {
  type AgentPin,
  type GrantPin,
  grantEnd,
  isGrantActive,
  type KeyPin,
  sameLimits,
  withCurrentKey,
} from "./pins.js";
import type { OwnerSession } from "./session.js";
import { type AgentKeyClaim, checkAgentKey } from "./verify.js";
import { type AgentDetail, bytes, type OwnerSecretView } from "./views.js";

/**
 * How far the server's clock may be from this machine's when deciding whether a grant expiring
 * right now is still listed. Inside this margin a disagreement is a retry, not an attack.
 */
export const CLOCK_TOLERANCE_MS = 120_000;

/** The end of every refusal: nothing went to the server. */
const NOTHING = "nothing was wrapped";

function untrusted(message: string): KeyholeError {
  return new KeyholeError("untrusted_server", `${message}; ${NOTHING}`);
}

/** Options of `checkPinnedAgent`. */
export interface PinCheckOptions {
  /**
   * `agent rotate` only: accept a current key other than the pinned one, as long as it is
   * signed by this owner (`KHK1`) and the agent is pinned, live and named as pinned. A rotate
   * wraps nothing for the server's key (the new key is made here), and a server restored from a
   * backup taken before a rotate serves the older key: rotating again is how the owner recovers.
   */
  readonly anySignedKey?: boolean;
}

/**
 * Checks an agent key the server offers for a wrap: the agent must be pinned on this machine,
 * not revoked, named as pinned, its key signed by this owner (`KHK1`) and the very key pinned
 * (or the pending key of a rotate whose outcome this machine missed, which is then recorded).
 * The pins are re-read from disk first (`reloadPins`). Returns the key bytes and the pin.
 */
export async function checkPinnedAgent(
  session: OwnerSession,
  claim: AgentKeyClaim,
  options: PinCheckOptions = {},
): Promise<{ pin: AgentPin; publicKey: Uint8Array }> {
  await session.reloadPins();
  return checkAgainstPins(session, claim, options);
}

/** `checkPinnedAgent` against the pins as last read (no re-read). */
async function checkAgainstPins(
  session: OwnerSession,
  claim: AgentKeyClaim,
  options: PinCheckOptions,
): Promise<{ pin: AgentPin; publicKey: Uint8Array }> {
  const pin = session.config.agents[claim.agentId];
  if (pin === undefined) {
    throw new KeyholeError(
      "config_error",
      `agent '${claim.name}' (${claim.agentId}) is not known to the owner state on this machine ` +
        `(${session.home}/config.json): it was created from another machine, or the server made ` +
        `it up; ${NOTHING}. Run owner commands from the machine that created the agent`,
    );
  }
  if (pin.revoked) {
    throw untrusted(
      `agent '${pin.name}' (${claim.agentId}) was revoked from this machine, but the server offers it a wrap`,
    );
  }
  if (pin.name !== claim.name) {
    throw untrusted(`the server calls agent '${pin.name}' (${claim.agentId}) '${claim.name}'`);
  }
  const publicKey = await checkAgentKey(session, claim);
  const fpr = encodeBase64url(await fingerprint(publicKey));
  if (fpr === pin.enc_fpr && claim.createdAt === pin.created_at) return { pin, publicKey };
  const pending = pin.pending;
  if (pending !== null && fpr === pending.enc_fpr && claim.createdAt === pending.created_at) {
    // A rotate committed but was not recorded here (interrupted): its token was never shown,
    // so this key is as good as dead; record it so the owner can rotate again.
    await session.updatePins((c) => withCurrentKey(c, claim.agentId, pending));
    return { pin: session.config.agents[claim.agentId] ?? pin, publicKey };
  }
  if (options.anySignedKey === true) return { pin, publicKey };
  throw untrusted(
    `the server's key for agent '${pin.name}' is not the one this machine last gave it ` +
      "(an older key, from before a rotate?)",
  );
}

/**
 * For display (`agent show`): whether the server's key for an agent is the one pinned here
 * (or a pending rotate's), another one, or the agent is unknown to this machine.
 */
export async function pinnedKeyState(
  session: OwnerSession,
  agent: { id: string; enc_pk: string; created_at: number },
): Promise<"pinned" | "other" | "unknown"> {
  const pin = session.config.agents[agent.id];
  if (pin === undefined) return "unknown";
  const fpr = encodeBase64url(await fingerprint(bytes(agent.enc_pk)));
  const matches = (key: KeyPin | null) =>
    key !== null && key.enc_fpr === fpr && key.created_at === agent.created_at;
  return matches(pin) || matches(pin.pending) ? "pinned" : "other";
}

/** One wrap to make for a new version, with the limits pinned on this machine. */
export interface PlannedWrap {
  readonly agentId: string;
  readonly publicKey: Uint8Array;
  readonly notAfter: number;
  readonly allowedHosts: readonly string[];
}

function pinnedGrants(session: OwnerSession, secretId: string): [string, GrantPin][] {
  return Object.entries(session.config.grants[secretId] ?? {});
}

/**
 * Decides who gets a wrap of a new version of `view`'s secret: exactly the grants this machine
 * made that are still active, and the server's grantee list must be that same set with the
 * same limits. A grantee this machine did not grant (or revoked, or removed), different limits,
 * a key other than the pinned one, or an active grant the server dropped: `untrusted_server`.
 */
export async function planSecretWraps(
  session: OwnerSession,
  view: OwnerSecretView,
): Promise<PlannedWrap[]> {
  // Decided from the pins on disk now, not those read before the value was prompted for.
  await session.reloadPins();
  const now = session.io.now();
  const pins = session.config.grants[view.id] ?? {};
  const listed = new Set<string>();
  const plan: PlannedWrap[] = [];
  for (const grantee of view.grants) {
    if (listed.has(grantee.agent_id)) throw untrusted("the server lists a grantee twice");
    listed.add(grantee.agent_id);
    const grant = pins[grantee.agent_id];
    const agent = session.config.agents[grantee.agent_id];
    if (grant === undefined || agent === undefined || agent.revoked) {
      throw untrusted(
        `the server lists agent '${grantee.agent_name}' (${grantee.agent_id}) as a grantee of ` +
          `'${view.name}', but the owner state on this machine has no such grant (never made ` +
          "here, removed or revoked since, or made from another machine)",
      );
    }
    if (!sameLimits(grant, grantee)) {
      throw untrusted(
        `the server changed the expiry or hosts of agent '${agent.name}''s grant of '${view.name}'`,
      );
    }
    if (!isGrantActive(agent, grant, now)) throw expiredButListed(agent, grant, view.name, now);
    const { publicKey } = await checkAgainstPins(session, granteeClaim(grantee), {});
    plan.push({
      agentId: grantee.agent_id,
      publicKey,
      notAfter: grant.not_after,
      allowedHosts: grant.allowed_hosts,
    });
  }
  for (const [agentId, grant] of pinnedGrants(session, view.id)) {
    const agent = session.config.agents[agentId];
    if (listed.has(agentId) || agent === undefined || !isGrantActive(agent, grant, now)) continue;
    const end = grantEnd(agent, grant);
    // About to expire: a server whose clock is a little ahead has already dropped it.
    if (end !== null && end - now <= CLOCK_TOLERANCE_MS) continue;
    throw untrusted(
      `the server no longer lists agent '${agent.name}''s grant of '${view.name}', which this ` +
        `machine made (if it was removed from another machine, run \`keyhole grant rm ${agent.name} ` +
        `${view.name}\` here)`,
    );
  }
  return plan;
}

function expiredButListed(
  agent: AgentPin,
  grant: GrantPin,
  secretName: string,
  now: number,
): KeyholeError {
  const end = grantEnd(agent, grant) ?? now;
  if (now - end <= CLOCK_TOLERANCE_MS) {
    return new KeyholeError(
      "conflict",
      `agent '${agent.name}''s grant of '${secretName}' expired moments ago by this machine's ` +
        `clock, but the server still lists it (the clocks differ); ${NOTHING}; retry in a minute`,
    );
  }
  return untrusted(
    `the server lists agent '${agent.name}''s expired grant of '${secretName}' as active`,
  );
}

function granteeClaim(grantee: SecretGrantee): AgentKeyClaim {
  return {
    agentId: grantee.agent_id,
    name: grantee.agent_name,
    encPk: grantee.enc_pk,
    createdAt: grantee.agent_created_at,
    keySig: grantee.key_sig,
  };
}

/** One grant to re-wrap for an agent's new key. */
export interface PlannedGrant {
  readonly secretId: string;
  readonly pin: GrantPin;
}

/** What an `agent rotate` re-wraps, and the pinned grants it cannot. */
export interface RotationPlan {
  /** The pinned active grants the server lists: re-wrapped for the new key. */
  readonly grants: PlannedGrant[];
  /**
   * Pinned active grants the server no longer lists (lost in a database restore, or removed
   * from another machine): not re-wrapped, to be re-added with `grant add`.
   */
  readonly missing: PlannedGrant[];
}

/**
 * The grants an `agent rotate` re-wraps: this machine's pinned grants of the agent that are
 * still active (an expired one is dropped, as the server drops it) and that the server lists.
 * The pins are re-read from disk first. The server's list may include expired grants; every
 * grant it lists must be pinned here with the same limits. A pinned grant the server no longer
 * has is reported in `missing`, never wrapped (the server's list can only shrink the set).
 */
export async function planRotation(
  session: OwnerSession,
  agent: AgentDetail,
): Promise<RotationPlan> {
  await session.reloadPins();
  const now = session.io.now();
  const pin = session.config.agents[agent.id];
  if (pin === undefined) throw new KeyholeError("internal");
  if (pin.revoked) {
    throw untrusted(`agent '${pin.name}' (${agent.id}) was revoked from this machine`);
  }
  const listed = new Map(agent.grants.map((g) => [g.secret_id, g]));
  for (const grant of agent.grants) {
    const grantPin = session.config.grants[grant.secret_id]?.[agent.id];
    if (grantPin === undefined) {
      // An expired grant this machine no longer pins is dropped by the rotate anyway.
      if (grant.not_after !== 0 && grant.not_after <= now) continue;
      throw untrusted(
        `the server lists a grant of '${grant.secret_name}' to agent '${pin.name}' that the ` +
          "owner state on this machine has no record of (made from another machine?)",
      );
    }
    if (!sameLimits(grantPin, grant) || grantPin.secret_name !== grant.secret_name) {
      throw untrusted(
        `the server changed agent '${pin.name}''s grant of '${grantPin.secret_name}'`,
      );
    }
  }
  const grants: PlannedGrant[] = [];
  const missing: PlannedGrant[] = [];
  for (const [secretId, byAgent] of Object.entries(session.config.grants)) {
    const grantPin = byAgent[agent.id];
    if (grantPin === undefined || !isGrantActive(pin, grantPin, now)) continue;
    (listed.has(secretId) ? grants : missing).push({ secretId, pin: grantPin });
  }
  return { grants, missing };
}
