/**
 * Owner operations on grants. Adding one re-wraps the secret's current DEK for the agent, but
 * only after the agent's key passes its KHK1 check with the owner's own public key: a server
 * that swapped in a key of its own gets nothing wrapped (SECURITY-TESTS #8).
 */
import { type GrantView, KeyholeError } from "@keyhole/core";
import { requireAgent } from "./agents.js";
import { requireSecretView, shouldRetry } from "./secrets.js";
import type { OwnerSession } from "./session.js";
import { checkAgentKey } from "./verify.js";
import { parseGrantList, parseGrantView } from "./views.js";
import { closeVersion, grantFor, openOwnerVersion } from "./wrapping.js";

/** Grants `secret` to `agent` (replacing an existing grant of the pair). */
export async function addGrant(
  session: OwnerSession,
  agentName: string,
  secretName: string,
  limits: { notAfter: number; allowedHosts: readonly string[] },
): Promise<GrantView> {
  for (let attempt = 1; ; attempt++) {
    const agent = await requireAgent(session, agentName);
    if (agent.revoked_at !== null) {
      throw new KeyholeError("conflict", `agent '${agentName}' is revoked`);
    }
    const publicKey = await checkAgentKey(session, {
      agentId: agent.id,
      name: agent.name,
      encPk: agent.enc_pk,
      createdAt: agent.created_at,
      keySig: agent.key_sig,
    });
    const view = await requireSecretView(session, secretName);
    const version = await openOwnerVersion(session, view);
    let upload: Awaited<ReturnType<typeof grantFor>>;
    try {
      upload = await grantFor(
        session,
        version,
        { id: agent.id, publicKey },
        { issuedAt: session.io.now(), ...limits },
      );
    } finally {
      closeVersion(version);
    }
    try {
      return parseGrantView(await session.client.request("POST", "/v1/owner/grants", upload));
    } catch (error) {
      if (!shouldRetry(error, attempt)) throw error;
    }
  }
}

/** Removes a grant; the server marks the secret "rotation recommended". */
export async function removeGrant(
  session: OwnerSession,
  agentName: string,
  secretName: string,
): Promise<void> {
  const path = `/v1/owner/grants/${encodeURIComponent(agentName)}/${encodeURIComponent(secretName)}`;
  await session.client.request("DELETE", path);
}

/** Every grant, or one agent's. */
export async function listGrants(session: OwnerSession, agentName?: string): Promise<GrantView[]> {
  const query = agentName === undefined ? "" : `?agent=${encodeURIComponent(agentName)}`;
  return parseGrantList(await session.client.request("GET", `/v1/owner/grants${query}`));
}
