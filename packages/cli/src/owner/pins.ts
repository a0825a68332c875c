/**
 * What this machine's owner created and granted, pinned in `config.json` (security review H2).
 * The server's own lists of agents and grantees are never trusted to say who gets a wrap: a
 * server colluding with a revoked agent could list it as a grantee again, serve a pre-rotation
 * key (its `KHK1` signature never expires), or drop a grant's expiry and hosts. So every owner
 * command that wraps a DEK compares the server's answer with these pins, and every command that
 * changes agents or grants updates them.
 *
 * Only this machine's history is known: owner commands are meant to run from one machine.
 */
import { isCanonicalHosts, isId, tryDecodeBase64url } from "@keyhole/core";

/** An agent key as pinned: the fingerprint of its X25519 key and its `KHK1` `created_at`. */
export interface KeyPin {
  /** base64url `fpr(enc_pk)` (16 bytes, core `fingerprint`). */
  readonly enc_fpr: string;
  readonly created_at: number;
}

/** One agent this machine created. */
export interface AgentPin extends KeyPin {
  readonly name: string;
  /** The agent's own expiry (ms), null for none. */
  readonly expires_at: number | null;
  readonly revoked: boolean;
  /**
   * The key of a rotate sent but not yet known to have committed. Accepting it lets the owner
   * carry on after an interrupted rotate. With `--token-file PATH` its token waits in
   * `PATH.pending` (owner/pending-token.ts), and re-running the rotate finishes or redoes it;
   * without, the token went only to stdout and is lost with the process, so rotating again is
   * the way out.
   */
  readonly pending: KeyPin | null;
}

/** The limits this machine signed into one grant. */
export interface GrantPin {
  readonly secret_name: string;
  /** 0 = no expiry. */
  readonly not_after: number;
  /** Canonical (core `canonicalHosts`). */
  readonly allowed_hosts: readonly string[];
}

/** Agent id → pin. */
export type AgentPins = Readonly<Record<string, AgentPin>>;
/** Secret id → agent id → pin. */
export type GrantPins = Readonly<Record<string, Readonly<Record<string, GrantPin>>>>;

/** The part of the config these functions change. */
export interface Pinned {
  readonly agents: AgentPins;
  readonly grants: GrantPins;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isTime(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function parseKeyPin(value: unknown): KeyPin | null {
  if (!isObject(value) || !isTime(value.created_at)) return null;
  if (typeof value.enc_fpr !== "string" || tryDecodeBase64url(value.enc_fpr)?.length !== 16) {
    return null;
  }
  return { enc_fpr: value.enc_fpr, created_at: value.created_at };
}

/** Parses `agents`; null when malformed. A config written before the field has none. */
export function parseAgentPins(value: unknown): AgentPins | null {
  if (value === undefined) return {};
  if (!isObject(value)) return null;
  const out: Record<string, AgentPin> = {};
  for (const [id, raw] of Object.entries(value)) {
    const key = parseKeyPin(raw);
    if (!isId("agent", id) || key === null || !isObject(raw)) return null;
    const pending = raw.pending === null ? null : parseKeyPin(raw.pending);
    if (raw.pending !== null && pending === null) return null;
    if (typeof raw.name !== "string" || typeof raw.revoked !== "boolean") return null;
    if (raw.expires_at !== null && !isTime(raw.expires_at)) return null;
    out[id] = {
      ...key,
      name: raw.name,
      expires_at: raw.expires_at,
      revoked: raw.revoked,
      pending,
    };
  }
  return out;
}

/** Parses `grants`; null when malformed. */
export function parseGrantPins(value: unknown): GrantPins | null {
  if (value === undefined) return {};
  if (!isObject(value)) return null;
  const out: Record<string, Record<string, GrantPin>> = {};
  for (const [secretId, byAgent] of Object.entries(value)) {
    if (!isId("secret", secretId) || !isObject(byAgent)) return null;
    const pins: Record<string, GrantPin> = {};
    for (const [agentId, raw] of Object.entries(byAgent)) {
      if (!isId("agent", agentId) || !isObject(raw) || typeof raw.secret_name !== "string") {
        return null;
      }
      const hosts = raw.allowed_hosts;
      if (!isTime(raw.not_after) || !Array.isArray(hosts)) return null;
      if (hosts.some((h) => typeof h !== "string") || !isCanonicalHosts(hosts as string[])) {
        return null;
      }
      pins[agentId] = {
        secret_name: raw.secret_name,
        not_after: raw.not_after,
        allowed_hosts: hosts as string[],
      };
    }
    out[secretId] = pins;
  }
  return out;
}

/** Pins a new agent, or replaces its pin. */
export function withAgentPin<C extends Pinned>(config: C, agentId: string, pin: AgentPin): C {
  return { ...config, agents: { ...config.agents, [agentId]: pin } };
}

/** Records the key of a rotate about to be sent. */
export function withPendingKey<C extends Pinned>(config: C, agentId: string, key: KeyPin): C {
  const pin = config.agents[agentId];
  if (pin === undefined) return config;
  return withAgentPin(config, agentId, { ...pin, pending: key });
}

/**
 * Makes `key` the agent's current key (a rotate committed). With `keepPending` the pending key
 * stays pinned too: `agent rotate --token-file` clears it only once the token file is in place,
 * since the pending pin is what lets a re-run recognise its own `PATH.pending`.
 */
export function withCurrentKey<C extends Pinned>(
  config: C,
  agentId: string,
  key: KeyPin,
  keepPending = false,
): C {
  const pin = config.agents[agentId];
  if (pin === undefined) return config;
  return withAgentPin(config, agentId, {
    ...pin,
    enc_fpr: key.enc_fpr,
    created_at: key.created_at,
    pending: keepPending ? pin.pending : null,
  });
}

/** Forgets the agent's pending key (its rotate is settled and its token file in place). */
export function withoutPendingKey<C extends Pinned>(config: C, agentId: string): C {
  const pin = config.agents[agentId];
  if (pin === undefined || pin.pending === null) return config;
  return withAgentPin(config, agentId, { ...pin, pending: null });
}

/**
 * Marks agents revoked and forgets all their grants. An agent this machine never pinned gets a
 * revoked entry too (with `placeholder` for its key), so it is refused by id from now on.
 */
export function withAgentsRevoked<C extends Pinned>(
  config: C,
  agentIds: readonly string[],
  placeholder: AgentPin,
): C {
  const agents = { ...config.agents };
  for (const id of agentIds) agents[id] = { ...(agents[id] ?? placeholder), revoked: true };
  const grants: Record<string, Readonly<Record<string, GrantPin>>> = {};
  for (const [secretId, byAgent] of Object.entries(config.grants)) {
    const kept = Object.fromEntries(
      Object.entries(byAgent).filter(([agentId]) => !agentIds.includes(agentId)),
    );
    if (Object.keys(kept).length > 0) grants[secretId] = kept;
  }
  return { ...config, agents, grants };
}

/** Pins a grant (replacing the pair's previous limits). */
export function withGrantPin<C extends Pinned>(
  config: C,
  secretId: string,
  agentId: string,
  pin: GrantPin,
): C {
  const byAgent = { ...(config.grants[secretId] ?? {}), [agentId]: pin };
  return { ...config, grants: { ...config.grants, [secretId]: byAgent } };
}

/** Forgets one grant. */
export function withoutGrantPin<C extends Pinned>(config: C, secretId: string, agentId: string): C {
  const byAgent = { ...(config.grants[secretId] ?? {}) };
  delete byAgent[agentId];
  const grants = { ...config.grants, [secretId]: byAgent };
  if (Object.keys(byAgent).length === 0) delete grants[secretId];
  return { ...config, grants };
}

/** Forgets every grant of a deleted secret. */
export function withoutSecretGrants<C extends Pinned>(config: C, secretId: string): C {
  const grants = { ...config.grants };
  delete grants[secretId];
  return { ...config, grants };
}

/** The ids of the live (not revoked) agents pinned under `name`. */
export function liveAgentIds(config: Pinned, name: string): string[] {
  return Object.entries(config.agents)
    .filter(([, pin]) => pin.name === name && !pin.revoked)
    .map(([id]) => id);
}

/**
 * When a grant stops being active: the earlier of its own expiry and its agent's, or null for
 * never. Expiry is exclusive, as on the server: at `now == end` it has expired.
 */
export function grantEnd(agent: AgentPin, grant: GrantPin): number | null {
  const ends = [grant.not_after, agent.expires_at ?? 0].filter((t) => t !== 0);
  return ends.length === 0 ? null : Math.min(...ends);
}

/** True when the grant is active at `now` by this machine's clock (and the agent not revoked). */
export function isGrantActive(agent: AgentPin, grant: GrantPin, now: number): boolean {
  if (agent.revoked) return false;
  const end = grantEnd(agent, grant);
  return end === null || now < end;
}

/** True when two grants carry the same limits. */
export function sameLimits(
  a: { not_after: number; allowed_hosts: readonly string[] },
  b: { not_after: number; allowed_hosts: readonly string[] },
): boolean {
  return (
    a.not_after === b.not_after &&
    a.allowed_hosts.length === b.allowed_hosts.length &&
    a.allowed_hosts.every((h, i) => h === b.allowed_hosts[i])
  );
}
