/**
 * Rules both adapters apply the same way, free of any database: what a set of grants must look
 * like, how a fetch's joined row splits into its grant, and how a revoke's blast radius is put
 * together from what the agent held and what it read.
 */
import { equalBytes, KeyholeError } from "@keyhole/core";
import type { GrantRow, SecretRow } from "./sqlite-rows.js";
import type { BlastRadiusEntry, NewGrant } from "./store.js";

/** Grants for one agent: all name it, all were made for its current key, one per secret. */
export function assertGrantsFor(
  grants: readonly NewGrant[],
  agentId: string,
  encPk: Uint8Array,
): void {
  for (const grant of grants) {
    if (grant.agentId !== agentId) {
      throw new KeyholeError("bad_request", "a grant names another agent");
    }
    if (!equalBytes(grant.agentEncPk, encPk))
      throw new KeyholeError("conflict", "the agent changed");
  }
  if (new Set(grants.map((g) => g.secretId)).size !== grants.length) {
    throw new KeyholeError("bad_request", "duplicate grant");
  }
}

/**
 * A fetch's one row: the secret's columns; then, when the agent holds an unexpired grant on its
 * current version, the grant's columns (`g_`, NULL otherwise) and the version's ciphertext.
 */
export type FetchRow = SecretRow & {
  g_agent_id: string | null;
  g_wrap: Buffer;
  g_issued_at: number;
  g_not_after: number;
  g_allowed_hosts: string;
  g_max_uses: number;
  g_uses: number;
  g_sig: Buffer;
  g_created_at: number;
  value: Buffer | null;
};

/** The grant half of a fetch row, or undefined when the agent holds no active grant. */
export function grantOfFetchRow(row: FetchRow): GrantRow | undefined {
  if (row.g_agent_id === null) return undefined;
  return {
    agent_id: row.g_agent_id,
    secret_id: row.id,
    version: row.current_version,
    wrap: row.g_wrap,
    issued_at: row.g_issued_at,
    not_after: row.g_not_after,
    allowed_hosts: row.g_allowed_hosts,
    max_uses: row.g_max_uses,
    uses: row.g_uses,
    sig: row.g_sig,
    created_at: row.g_created_at,
  };
}

/** What a revoked agent read of one secret, from the audit log. */
export interface ReadCount {
  readonly secret_id: string;
  readonly reads: number;
  readonly first: number;
  readonly last: number;
}

/**
 * The blast radius: every secret the agent held a grant on or read, with its reads, sorted by
 * name (deleted secrets, with no name, last). `nameOf` gives a secret's current name or null.
 */
export function blastRadius(
  granted: ReadonlySet<string>,
  reads: readonly ReadCount[],
  nameOf: ReadonlyMap<string, string>,
): BlastRadiusEntry[] {
  const bySecret = new Map<string, BlastRadiusEntry>();
  for (const secretId of granted) {
    bySecret.set(secretId, {
      secretId,
      secretName: nameOf.get(secretId) ?? null,
      granted: true,
      reads: 0,
      firstReadAt: null,
      lastReadAt: null,
    });
  }
  for (const r of reads) {
    bySecret.set(r.secret_id, {
      secretId: r.secret_id,
      secretName: nameOf.get(r.secret_id) ?? null,
      granted: granted.has(r.secret_id),
      reads: r.reads,
      firstReadAt: r.first,
      lastReadAt: r.last,
    });
  }
  const sortKey = (e: BlastRadiusEntry) => e.secretName ?? `\uffff${e.secretId}`;
  return [...bySecret.values()].sort((x, y) =>
    sortKey(x) < sortKey(y) ? -1 : sortKey(x) > sortKey(y) ? 1 : 0,
  );
}
