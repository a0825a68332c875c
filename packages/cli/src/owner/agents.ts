/**
 * Owner operations on agents. The owner client mints each token itself: the server only ever
 * sees the agent's public key (with the owner's KHK1 signature over it), the token id and the
 * auth key, never the seed. Creating or rotating an agent re-wraps each granted secret's DEK for
 * the agent's new key and signs a grant for it.
 */
import {
  type AgentCreateRequest,
  type AgentRevokeResponse,
  type AgentRotateRequest,
  AgentToken,
  type AgentView,
  encodeBase64url,
  equalBytes,
  fingerprint,
  type GrantUpload,
  KeyholeError,
  newId,
  signAgentKey,
  zeroize,
} from "@keyhole/core";
import { note } from "../io.js";
import { crashPoint } from "../test-crash.js";
import type { OwnerConfig } from "./config.js";
import { checkPinnedAgent, planRotation } from "./pin-checks.js";
import {
  type GrantPin,
  liveAgentIds,
  withAgentPin,
  withAgentsRevoked,
  withCurrentKey,
  withGrantPin,
  withoutGrantPin,
  withPendingKey,
} from "./pins.js";
import { requireSecretView, shouldRetry } from "./secrets.js";
import type { OwnerSession } from "./session.js";
import { keyClaimOf } from "./verify.js";
import {
  type AgentDetail,
  bytes,
  parseAgentDetail,
  parseAgentList,
  parseAgentView,
  parseRevokeResponse,
} from "./views.js";
import { closeVersion, type GrantLimits, grantFor, openOwnerVersion } from "./wrapping.js";

/** `/v1/owner/agents/<name>`. */
export function agentPath(name: string): string {
  return `/v1/owner/agents/${encodeURIComponent(name)}`;
}

/** An agent with its grants, or null when there is none. */
export async function getAgent(session: OwnerSession, name: string): Promise<AgentDetail | null> {
  const body = await session.client.requestOrNull("GET", agentPath(name));
  if (body === null) return null;
  const agent = parseAgentDetail(body);
  if (agent.name !== name) {
    throw new KeyholeError("untrusted_server", "the server answered for a different agent");
  }
  return agent;
}

/** An agent with its grants; `not_found` when there is none. */
export async function requireAgent(session: OwnerSession, name: string): Promise<AgentDetail> {
  const agent = await getAgent(session, name);
  if (agent === null) throw new KeyholeError("not_found", `no agent named '${name}'`);
  return agent;
}

/** Every agent. */
export async function listAgents(session: OwnerSession): Promise<AgentView[]> {
  return parseAgentList(await session.client.request("GET", "/v1/owner/agents"));
}

/** A new key for an agent: the token (the secret half) and what the server may see. */
interface MintedKey {
  readonly token: AgentToken;
  readonly publicKey: Uint8Array;
  /** base64url `fpr(publicKey)`, as pinned. */
  readonly encFpr: string;
  readonly createdAt: number;
  readonly keySig: string;
  readonly tokenId: string;
  readonly authKey: string;
}

/**
 * Mints a key for `agentId`, stamped now or, if later, `notBefore`: the server refuses a rotate
 * to a key older than the current one, so a key made with a clock behind the last one's must
 * still come after it.
 */
async function mintKey(session: OwnerSession, agentId: string, notBefore = 0): Promise<MintedKey> {
  const token = AgentToken.generate(await fingerprint(session.signingKey.publicKey));
  const keys = await token.deriveKeys();
  const createdAt = Math.max(session.io.now(), notBefore);
  const publicKey = keys.recipient.publicKey;
  const keySig = await signAgentKey(session.signingKey, {
    vaultId: session.vaultId,
    agentId,
    agentPublicKey: publicKey,
    createdAt,
  });
  const authKey = encodeBase64url(keys.authKey);
  zeroize(keys.authKey);
  return {
    token,
    publicKey,
    encFpr: encodeBase64url(await fingerprint(publicKey)),
    createdAt,
    keySig: encodeBase64url(keySig),
    tokenId: encodeBase64url(token.tokenId),
    authKey,
  };
}

/** One grant to make for a new agent key: a secret (by name) and the limits to sign. */
interface WantedGrant {
  readonly secret: string;
  /** When set, the secret must have this id (the one the pin was made for). */
  readonly secretId?: string;
  readonly notAfter: number;
  readonly allowedHosts: readonly string[];
}

/** Wraps the current version of each wanted secret for an agent's key. */
async function grantsFor(
  session: OwnerSession,
  agent: { id: string; publicKey: Uint8Array },
  wanted: readonly WantedGrant[],
): Promise<{ upload: GrantUpload; secretName: string }[]> {
  const uploads: { upload: GrantUpload; secretName: string }[] = [];
  for (const want of wanted) {
    const view = await requireSecretView(session, want.secret);
    const version = await openOwnerVersion(session, view);
    try {
      // The id and name are covered by the owner's signature, checked by openOwnerVersion.
      if (want.secretId !== undefined && view.id !== want.secretId) {
        throw new KeyholeError(
          "untrusted_server",
          `the server's secret '${want.secret}' is not the one this machine granted; nothing was wrapped`,
        );
      }
      const limits: GrantLimits = {
        issuedAt: session.io.now(),
        notAfter: want.notAfter,
        allowedHosts: want.allowedHosts,
      };
      uploads.push({
        upload: await grantFor(session, version, agent, limits),
        secretName: view.name,
      });
    } finally {
      closeVersion(version);
    }
  }
  return uploads;
}

/** The pins of granted uploads, applied to a config. */
function pinGrants(
  config: OwnerConfig,
  made: readonly { upload: GrantUpload; secretName: string }[],
): OwnerConfig {
  let next = config;
  for (const { upload, secretName } of made) {
    next = withGrantPin(next, upload.secret_id, upload.agent_id, {
      secret_name: secretName,
      not_after: upload.not_after,
      allowed_hosts: upload.allowed_hosts,
    });
  }
  return next;
}

/** A created or rotated agent and its token (shown once, then destroyed by the caller). */
export interface AgentWithToken {
  readonly agent: AgentView;
  readonly token: AgentToken;
}

/**
 * Creates an agent granted `secrets`, optionally expiring at `expiresAt`, accepted only from
 * `allowedCidrs` (canonical, from `canonicalCidrs`; empty for anywhere).
 */
export async function createAgent(
  session: OwnerSession,
  options: {
    name: string;
    secrets: readonly string[];
    expiresAt: number | null;
    allowedCidrs?: readonly string[];
  },
): Promise<AgentWithToken> {
  const agentId = newId("agent");
  const key = await mintKey(session, agentId);
  try {
    for (let attempt = 1; ; attempt++) {
      // A revoked agent's name may be reused (the server allows it); only a live one conflicts.
      if ((await getAgent(session, options.name))?.revoked_at === null) {
        throw new KeyholeError("conflict", `an agent named '${options.name}' already exists`);
      }
      const made = await grantsFor(
        session,
        { id: agentId, publicKey: key.publicKey },
        options.secrets.map((secret) => ({ secret, notAfter: 0, allowedHosts: [] })),
      );
      const body: AgentCreateRequest = {
        id: agentId,
        name: options.name,
        enc_pk: encodeBase64url(key.publicKey),
        created_at: key.createdAt,
        key_sig: key.keySig,
        token_id: key.tokenId,
        auth_key: key.authKey,
        expires_at: options.expiresAt,
        allowed_cidrs: [...(options.allowedCidrs ?? [])],
        grants: made.map((m) => m.upload),
      };
      let agent: AgentView;
      try {
        agent = parseAgentView(await session.client.request("POST", "/v1/owner/agents", body));
      } catch (error) {
        if (!shouldRetry(error, attempt)) throw error;
        continue;
      }
      // Pinned before the token is shown: an agent this machine does not know gets no wraps.
      await session.updatePins((c) =>
        pinGrants(
          withAgentPin(c, agentId, {
            name: options.name,
            enc_fpr: key.encFpr,
            created_at: key.createdAt,
            expires_at: options.expiresAt,
            revoked: false,
            pending: null,
          }),
          made,
        ),
      );
      if (agent.id !== agentId) throw new KeyholeError("untrusted_server", "agent id mismatch");
      return { agent, token: key.token };
    }
  } catch (error) {
    key.token.destroy();
    throw error;
  }
}

/**
 * Gives an agent a new token: new key pair, every grant this machine made that is still active
 * re-wrapped for it with its pinned expiry and hosts (expired ones are dropped, as the server
 * drops them), old token dead when the server commits. `beforeSend` runs before each request
 * is sent (`--token-file` keeps the token on disk with it: owner/pending-token.ts).
 */
export async function rotateAgent(
  session: OwnerSession,
  name: string,
  options: RotateOptions = {},
): Promise<AgentWithToken> {
  let key: MintedKey | null = null;
  try {
    for (let attempt = 1; ; attempt++) {
      const agent = await requireAgent(session, name);
      if (agent.revoked_at !== null) {
        throw new KeyholeError("conflict", `agent '${name}' is revoked; create a new one`);
      }
      // The agent must be this machine's and live, its key signed by this owner. Unlike a wrap,
      // the key need not be the pinned one: nothing is wrapped for it, and a server restored
      // from before a rotate serves the older key, which only a rotate can replace.
      await checkPinnedAgent(session, keyClaimOf(agent), { anySignedKey: true });
      const plan = await planRotation(session, agent);
      if (key !== null && key.createdAt < agent.created_at) {
        // Another rotate committed a newer key since this one was made (our request got a
        // conflict, so it did not commit): the server would refuse this key as older.
        key.token.destroy();
        key = null;
      }
      key ??= await mintKey(session, agent.id, agent.created_at + 1);
      const made = await grantsFor(
        session,
        { id: agent.id, publicKey: key.publicKey },
        plan.grants.map((g) => ({
          secret: g.pin.secret_name,
          secretId: g.secretId,
          notAfter: g.pin.not_after,
          allowedHosts: g.pin.allowed_hosts,
        })),
      );
      const body: AgentRotateRequest = {
        enc_pk: encodeBase64url(key.publicKey),
        created_at: key.createdAt,
        key_sig: key.keySig,
        token_id: key.tokenId,
        auth_key: key.authKey,
        grants: made.map((m) => m.upload),
      };
      const newKey = { enc_fpr: key.encFpr, created_at: key.createdAt };
      crashPoint(session.io.env, "rotate:minted");
      // Recorded before sending, so a rotate whose answer is lost can be recognised later.
      await session.updatePins((c) => withPendingKey(c, agent.id, newKey));
      crashPoint(session.io.env, "rotate:pending-pinned");
      await options.beforeSend?.(key.token);
      crashPoint(session.io.env, "rotate:pending-written");
      let rotated: AgentView;
      try {
        rotated = parseAgentView(
          await session.client.request("POST", `${agentPath(name)}/rotate`, body),
        );
      } catch (error) {
        if (!shouldRetry(error, attempt)) throw error;
        continue;
      }
      crashPoint(session.io.env, "rotate:answered");
      // The new key holds no wrap of a grant the server lost: forget its pin, say so.
      await session.updatePins((c) => {
        let next = withCurrentKey(c, agent.id, newKey, options.keepPendingPin === true);
        for (const lost of plan.missing) next = withoutGrantPin(next, lost.secretId, agent.id);
        return next;
      });
      crashPoint(session.io.env, "rotate:pinned");
      for (const lost of plan.missing) note(session.io, lostGrantNotice(name, lost.pin));
      if (rotated.id !== agent.id) throw new KeyholeError("untrusted_server", "agent id mismatch");
      return { agent: rotated, token: key.token };
    }
  } catch (error) {
    key?.token.destroy();
    throw error;
  }
}

/** Options of `rotateAgent`. */
export interface RotateOptions {
  /**
   * Runs with the new token after it is pinned as pending and before each rotate request is
   * sent: from the send on, the server may commit and the old token may be dead.
   */
  readonly beforeSend?: (token: AgentToken) => Promise<void>;
  /**
   * Keep the pending key pinned after the rotate commits (`--token-file`: cleared once the
   * token file is in place, see rotate-to-file.ts).
   */
  readonly keepPendingPin?: boolean;
}

/**
 * Settles a token that an interrupted `agent rotate` kept (owner/pending-token.ts). It must be
 * the key this machine pinned as the agent's pending key before that rotate's request was sent;
 * anything else in `PATH.pending` (a copy of the current token planted by whoever holds it, a
 * token of another agent or owner) is refused with `config_error` and left alone, so a planted
 * file can neither stop a rotate nor be taken for its result. Then the server is asked which key
 * the agent has now: if it is this token's (signed by this owner), the rotate committed and the
 * key is pinned as current (the pending pin stays until the file is in place); otherwise the
 * rotate never committed and the token is dead: null.
 */
export async function settleInterruptedRotate(
  session: OwnerSession,
  name: string,
  token: AgentToken,
): Promise<AgentView | null> {
  if (!equalBytes(token.ownerFingerprint, await fingerprint(session.signingKey.publicKey))) {
    throw new KeyholeError("config_error", "the pending token was made by another owner");
  }
  const keys = await token.deriveKeys();
  zeroize(keys.authKey);
  const publicKey = keys.recipient.publicKey;
  const tokenFpr = encodeBase64url(await fingerprint(publicKey));
  const agent = await requireAgent(session, name);
  const pin = (await session.reloadPins()).agents[agent.id];
  if (pin?.pending?.enc_fpr !== tokenFpr) {
    throw new KeyholeError(
      "config_error",
      `the pending token file was not written by an interrupted rotate of agent '${name}' on ` +
        "this machine (its key is not the one pinned for it); move it away and run the " +
        "command again",
    );
  }
  if (agent.revoked_at !== null) {
    throw new KeyholeError("conflict", `agent '${name}' is revoked; create a new one`);
  }
  if (!equalBytes(bytes(agent.enc_pk), publicKey)) {
    const holder = (await listAgents(session)).find(
      (a) => a.revoked_at === null && equalBytes(bytes(a.enc_pk), publicKey),
    );
    if (holder !== undefined) {
      throw new KeyholeError(
        "config_error",
        `the pending token is agent '${holder.name}''s current token, not '${name}''s`,
      );
    }
    return null;
  }
  await checkPinnedAgent(session, keyClaimOf(agent), { anySignedKey: true });
  const current = { enc_fpr: tokenFpr, created_at: agent.created_at };
  await session.updatePins((c) => withCurrentKey(c, agent.id, current, true));
  return agent;
}

function lostGrantNotice(agentName: string, grant: GrantPin): string {
  const hosts = grant.allowed_hosts.length === 0 ? "" : ` --hosts ${grant.allowed_hosts.join(",")}`;
  const expiry =
    grant.not_after === 0
      ? ""
      : `; it was set to expire at ${new Date(grant.not_after).toISOString()}`;
  return (
    `warning: the server no longer has agent '${agentName}''s grant of '${grant.secret_name}' ` +
    "(lost in a database restore, or removed from another machine); the new token cannot read " +
    `it. If the agent still needs it, run \`keyhole grant add ${agentName} ${grant.secret_name}${hosts}\`${expiry}`
  );
}

/**
 * Revokes an agent and returns its blast radius. This machine marks it revoked (and forgets its
 * grants) before asking the server, so from then on nothing is ever wrapped for it from here,
 * whatever the server answers or later lists.
 */
export async function revokeAgent(
  session: OwnerSession,
  name: string,
): Promise<AgentRevokeResponse> {
  const local = liveAgentIds(await session.reloadPins(), name);
  const revoke = (ids: readonly string[], seen: AgentView | null) =>
    session.updatePins((c) =>
      withAgentsRevoked(c, ids, {
        name,
        // Only for an agent this machine never pinned: a revoked pin's key is never compared.
        enc_fpr: encodeBase64url(new Uint8Array(16)),
        created_at: seen?.created_at ?? 0,
        expires_at: seen?.expires_at ?? null,
        revoked: true,
        pending: null,
      }),
    );
  if (local.length > 0) await revoke(local, null);
  const response = parseRevokeResponse(
    await session.client.request("POST", `${agentPath(name)}/revoke`),
  );
  const pinned = session.config.agents[response.agent.id];
  if (response.agent.name !== name || (pinned !== undefined && pinned.name !== name)) {
    throw new KeyholeError("untrusted_server", "the server answered for a different agent");
  }
  await revoke([response.agent.id], response.agent);
  return response;
}
