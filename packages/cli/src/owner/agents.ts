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
  fingerprint,
  type GrantUpload,
  KeyholeError,
  newId,
  signAgentKey,
  zeroize,
} from "@keyhole/core";
import { requireSecretView, shouldRetry } from "./secrets.js";
import type { OwnerSession } from "./session.js";
import {
  type AgentDetail,
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
  readonly createdAt: number;
  readonly keySig: string;
  readonly tokenId: string;
  readonly authKey: string;
}

async function mintKey(session: OwnerSession, agentId: string): Promise<MintedKey> {
  const token = AgentToken.generate(await fingerprint(session.signingKey.publicKey));
  const keys = await token.deriveKeys();
  const createdAt = session.io.now();
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
    createdAt,
    keySig: encodeBase64url(keySig),
    tokenId: encodeBase64url(token.tokenId),
    authKey,
  };
}

/** Wraps the current version of each named secret for an agent's key. */
async function grantsFor(
  session: OwnerSession,
  agent: { id: string; publicKey: Uint8Array },
  wanted: readonly { secret: string; notAfter: number; allowedHosts: readonly string[] }[],
): Promise<GrantUpload[]> {
  const uploads: GrantUpload[] = [];
  for (const want of wanted) {
    const view = await requireSecretView(session, want.secret);
    const version = await openOwnerVersion(session, view);
    try {
      const limits: GrantLimits = {
        issuedAt: session.io.now(),
        notAfter: want.notAfter,
        allowedHosts: want.allowedHosts,
      };
      uploads.push(await grantFor(session, version, agent, limits));
    } finally {
      closeVersion(version);
    }
  }
  return uploads;
}

/** A created or rotated agent and its token (shown once, then destroyed by the caller). */
export interface AgentWithToken {
  readonly agent: AgentView;
  readonly token: AgentToken;
}

/** Creates an agent granted `secrets`, optionally expiring at `expiresAt`. */
export async function createAgent(
  session: OwnerSession,
  options: { name: string; secrets: readonly string[]; expiresAt: number | null },
): Promise<AgentWithToken> {
  const agentId = newId("agent");
  const key = await mintKey(session, agentId);
  try {
    for (let attempt = 1; ; attempt++) {
      if ((await getAgent(session, options.name)) !== null) {
        throw new KeyholeError("conflict", `an agent named '${options.name}' already exists`);
      }
      const grants = await grantsFor(
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
        grants,
      };
      try {
        const agent = parseAgentView(
          await session.client.request("POST", "/v1/owner/agents", body),
        );
        if (agent.id !== agentId) throw new KeyholeError("untrusted_server", "agent id mismatch");
        return { agent, token: key.token };
      } catch (error) {
        if (!shouldRetry(error, attempt)) throw error;
      }
    }
  } catch (error) {
    key.token.destroy();
    throw error;
  }
}

/**
 * Gives an agent a new token: new key pair, every current grant re-wrapped for it (keeping each
 * grant's expiry and hosts), old token dead when the server commits.
 */
export async function rotateAgent(session: OwnerSession, name: string): Promise<AgentWithToken> {
  let key: MintedKey | null = null;
  try {
    for (let attempt = 1; ; attempt++) {
      const agent = await requireAgent(session, name);
      if (agent.revoked_at !== null) {
        throw new KeyholeError("conflict", `agent '${name}' is revoked; create a new one`);
      }
      key ??= await mintKey(session, agent.id);
      const grants = await grantsFor(
        session,
        { id: agent.id, publicKey: key.publicKey },
        agent.grants.map((g) => ({
          secret: g.secret_name,
          notAfter: g.not_after,
          allowedHosts: g.allowed_hosts,
        })),
      );
      const body: AgentRotateRequest = {
        enc_pk: encodeBase64url(key.publicKey),
        created_at: key.createdAt,
        key_sig: key.keySig,
        token_id: key.tokenId,
        auth_key: key.authKey,
        grants,
      };
      try {
        const rotated = parseAgentView(
          await session.client.request("POST", `${agentPath(name)}/rotate`, body),
        );
        if (rotated.id !== agent.id)
          throw new KeyholeError("untrusted_server", "agent id mismatch");
        return { agent: rotated, token: key.token };
      } catch (error) {
        if (!shouldRetry(error, attempt)) throw error;
      }
    }
  } catch (error) {
    key?.token.destroy();
    throw error;
  }
}

/** Revokes an agent and returns its blast radius. */
export async function revokeAgent(
  session: OwnerSession,
  name: string,
): Promise<AgentRevokeResponse> {
  return parseRevokeResponse(await session.client.request("POST", `${agentPath(name)}/revoke`));
}
