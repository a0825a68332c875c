/**
 * Owner operations on secrets: store a new version (sealed under a fresh DEK, wrapped for the
 * owner and for every granted agent whose key checks out), read one back, list, delete.
 */

import { setTimeout as sleep } from "node:timers/promises";
import {
  encodeBase64url,
  isKeyholeError,
  KeyholeError,
  newId,
  type SecretPutRequest,
  type SecretSummary,
} from "@keyhole/core";
import { planSecretWraps } from "./pin-checks.js";
import type { OwnerSession } from "./session.js";
import {
  type OwnerSecretView,
  parseHistory,
  parsePutResponse,
  parseSecretList,
  parseSecretView,
  type VersionView,
} from "./views.js";
import {
  checkOwnerVersion,
  closeVersion,
  grantFor,
  openOwnerVersion,
  readValue,
  sealNewVersion,
} from "./wrapping.js";

/** First try plus three retries after a `409 conflict` (someone else wrote in between). */
export const MAX_ATTEMPTS = 4;

/** True when `error` is the server's `conflict` and another attempt is allowed. */
export function shouldRetry(error: unknown, attempt: number): boolean {
  return isKeyholeError(error) && error.code === "conflict" && attempt < MAX_ATTEMPTS;
}

/** An `untrusted_server` verdict worth re-checking with a fresh view (see `putSecretValue`). */
function isPinRace(error: unknown, attempt: number): boolean {
  return isKeyholeError(error) && error.code === "untrusted_server" && attempt < MAX_ATTEMPTS;
}

/** `/v1/owner/secrets/<name>`. */
export function secretPath(name: string): string {
  return `/v1/owner/secrets/${encodeURIComponent(name)}`;
}

/** The owner's view of a secret, or null when there is none. */
export async function getSecretView(
  session: OwnerSession,
  name: string,
): Promise<OwnerSecretView | null> {
  const body = await session.client.requestOrNull("GET", secretPath(name));
  if (body === null) return null;
  const view = parseSecretView(body);
  if (view.name !== name) {
    throw new KeyholeError("untrusted_server", "the server answered for a different secret");
  }
  return view;
}

/** The owner's view of a secret; `not_found` when there is none. */
export async function requireSecretView(
  session: OwnerSession,
  name: string,
): Promise<OwnerSecretView> {
  const view = await getSecretView(session, name);
  if (view === null) throw new KeyholeError("not_found", `no secret named '${name}'`);
  return view;
}

/** What a write did. */
export interface PutResult {
  readonly id: string;
  readonly version: number;
  readonly created: boolean;
  readonly agents: number;
}

/**
 * Stores `value` as the next version of `name`, wrapped for exactly the active grants this
 * machine made (checked against the server's grantee list and each agent's pinned key before
 * anything is sealed, with the pinned limits); a version race (409) re-reads and retries.
 */
export async function putSecretValue(
  session: OwnerSession,
  name: string,
  value: Uint8Array,
): Promise<PutResult> {
  for (let attempt = 1; ; attempt++) {
    const view = await getSecretView(session, name);
    // The current version must be this owner's: its signature binds the name to the id.
    if (view !== null) await checkOwnerVersion(session, view);
    const id = view?.id ?? newId("secret");
    const expected = view?.version ?? 0;
    // Who gets a wrap is decided by this machine's pins; the server's list must agree.
    let plan: Awaited<ReturnType<typeof planSecretWraps>>;
    try {
      plan = view === null ? [] : await planSecretWraps(session, view);
    } catch (error) {
      // Another owner command can change a grant between our read of the server's list and
      // our read of the pins. Look again, a moment later, before calling the server a liar.
      if (!isPinRace(error, attempt)) throw error;
      await sleep(50 * attempt);
      continue;
    }
    const ref = { vaultId: session.vaultId, secretId: id, version: expected + 1 };
    const sealed = await sealNewVersion(session, ref, name, value);
    let body: SecretPutRequest;
    try {
      const issuedAt = session.io.now();
      const grants = [];
      for (const wrap of plan) {
        grants.push(
          await grantFor(
            session,
            sealed,
            { id: wrap.agentId, publicKey: wrap.publicKey },
            { issuedAt, notAfter: wrap.notAfter, allowedHosts: wrap.allowedHosts },
          ),
        );
      }
      body = {
        id,
        expected_version: expected,
        version: expected + 1,
        value: encodeBase64url(sealed.envelope),
        owner_wrap: encodeBase64url(sealed.ownerWrap),
        owner_sig: sealed.ownerSig,
        grants,
      };
    } finally {
      closeVersion(sealed);
    }
    try {
      const result = parsePutResponse(await session.client.request("PUT", secretPath(name), body));
      if (result.id !== id || result.version !== expected + 1) {
        throw new KeyholeError("untrusted_server", "the server stored a different version");
      }
      session.noteVersion(id, result.version);
      return { id, version: result.version, created: expected === 0, agents: plan.length };
    } catch (error) {
      if (!shouldRetry(error, attempt)) throw error;
    }
  }
}

/** Reads and verifies the current value of `name`. The caller zeroes the returned bytes. */
export async function readSecret(
  session: OwnerSession,
  name: string,
): Promise<{ view: OwnerSecretView; value: Uint8Array }> {
  const view = await requireSecretView(session, name);
  const version = await openOwnerVersion(session, view);
  try {
    return { view, value: await readValue(version) };
  } finally {
    closeVersion(version);
  }
}

/** Every secret's metadata. */
export async function listSecrets(session: OwnerSession): Promise<SecretSummary[]> {
  return parseSecretList(await session.client.request("GET", "/v1/owner/secrets"));
}

/** A secret's versions. */
export async function secretHistory(session: OwnerSession, name: string): Promise<VersionView[]> {
  return parseHistory(await session.client.request("GET", `${secretPath(name)}/history`));
}

/** Deletes a secret with all its versions, wraps and grants; forgets its version and grant pins. */
export async function deleteSecret(session: OwnerSession, name: string): Promise<void> {
  const view = await getSecretView(session, name);
  await session.client.request("DELETE", secretPath(name));
  if (view !== null) session.forgetSecret(view.id);
}
