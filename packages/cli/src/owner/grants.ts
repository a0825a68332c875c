/**
 * Owner operations on grants. Adding one re-wraps the secret's current DEK for the agent, but
 * only after the agent's key passes its KHK1 check with the owner's own public key and matches
 * the key this machine pinned for it: a server that swapped in a key of its own, or an older
 * one, gets nothing wrapped (SECURITY-TESTS #8, security review H2). Every grant made or removed
 * here is pinned in the config, so later re-wraps use these limits, never the server's.
 */
import { type GrantAddRequest, type GrantView, KeyholeError } from "@keyhole/core";
import { requireAgent } from "./agents.js";
import { checkPinnedAgent } from "./pin-checks.js";
import { liveAgentIds, withGrantPin, withoutGrantPin } from "./pins.js";
import { requireSecretView, shouldRetry } from "./secrets.js";
import type { OwnerSession } from "./session.js";
import { keyClaimOf } from "./verify.js";
import { parseGrantList, parseGrantView } from "./views.js";
import { closeVersion, grantFor, openOwnerVersion } from "./wrapping.js";

/**
 * Grants `secret` to `agent` (replacing an existing grant of the pair). `maxUses` (0: none) is
 * a budget the server enforces and counts; it is not signed, and re-wraps keep it.
 */
export async function addGrant(
  session: OwnerSession,
  agentName: string,
  secretName: string,
  limits: { notAfter: number; allowedHosts: readonly string[]; maxUses: number },
): Promise<GrantView> {
  for (let attempt = 1; ; attempt++) {
    const agent = await requireAgent(session, agentName);
    if (agent.revoked_at !== null) {
      throw new KeyholeError("conflict", `agent '${agentName}' is revoked`);
    }
    const { publicKey } = await checkPinnedAgent(session, keyClaimOf(agent));
    const view = await requireSecretView(session, secretName);
    const version = await openOwnerVersion(session, view);
    let upload: Awaited<ReturnType<typeof grantFor>>;
    try {
      upload = await grantFor(
        session,
        version,
        { id: agent.id, publicKey },
        {
          issuedAt: session.io.now(),
          notAfter: limits.notAfter,
          allowedHosts: limits.allowedHosts,
        },
      );
    } finally {
      closeVersion(version);
    }
    let grant: GrantView;
    try {
      const body: GrantAddRequest = { ...upload, max_uses: limits.maxUses };
      grant = parseGrantView(await session.client.request("POST", "/v1/owner/grants", body));
    } catch (error) {
      if (!shouldRetry(error, attempt)) throw error;
      continue;
    }
    if (grant.max_uses !== limits.maxUses) {
      throw new KeyholeError("untrusted_server", "the server changed the grant's --max-uses");
    }
    // Pinned only once the server has it: a grant pinned but missing would read as one the
    // server dropped. (An interrupted write leaves the opposite; `grant add` again mends it.)
    await session.updatePins((c) =>
      withGrantPin(c, view.id, agent.id, {
        secret_name: view.name,
        not_after: limits.notAfter,
        allowed_hosts: [...limits.allowedHosts],
      }),
    );
    return grant;
  }
}

/**
 * Removes a grant; the server marks the secret "rotation recommended". The pin goes first, so
 * the grant is never re-wrapped from this machine again even if the server keeps it.
 */
export async function removeGrant(
  session: OwnerSession,
  agentName: string,
  secretName: string,
): Promise<void> {
  await session.updatePins((config) => {
    const agentIds = liveAgentIds(config, agentName);
    let next = config;
    for (const [secretId, byAgent] of Object.entries(config.grants)) {
      for (const agentId of agentIds) {
        if (byAgent[agentId]?.secret_name === secretName) {
          next = withoutGrantPin(next, secretId, agentId);
        }
      }
    }
    return next;
  });
  const path = `/v1/owner/grants/${encodeURIComponent(agentName)}/${encodeURIComponent(secretName)}`;
  await session.client.request("DELETE", path);
}

/** Every grant, or one agent's. */
export async function listGrants(session: OwnerSession, agentName?: string): Promise<GrantView[]> {
  const query = agentName === undefined ? "" : `?agent=${encodeURIComponent(agentName)}`;
  return parseGrantList(await session.client.request("GET", `/v1/owner/grants${query}`));
}
