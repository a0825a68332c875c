/**
 * The storage contract of the server: one interface of domain operations, each one atomic, with
 * sibling adapters (SQLite today, PostgreSQL later) that all pass `runStoreContract`.
 *
 * Rules every adapter follows:
 * - Every operation that takes an `AuditRequest` appends exactly one audit entry **in the same
 *   transaction** when it resolves (its action and result set by the operation: `ok`, or
 *   `not_found`/`denied` when it returns `null`/`false`), and none when it rejects. If the audit
 *   append fails, the whole operation fails and nothing is returned (fail closed).
 * - Expected absence is a return value (`null`, `false`), not an exception. A lost race (version
 *   check, name taken, grant set changed) rejects with `KeyholeError("conflict")`; storage
 *   trouble rejects with `storage_unavailable` (disk full, read-only, I/O error) or
 *   `unavailable` (locked), see storage-errors.ts; anything else is a bug (a 500).
 * - Times are milliseconds since the epoch, passed in by the caller: the store has no clock.
 * - A grant is *active* when its agent is neither revoked nor expired (`expires_at > now`) and
 *   the grant itself has not expired (`not_after` 0 or `> now`). Expiry is exclusive: at
 *   `now === expires_at` the agent is expired.
 */
import type { AuditActorType, AuditFields } from "@keyhole/core";

/** Who asked, from where, and when: the part of an audit entry the request supplies. */
export interface AuditRequest {
  readonly ts: number;
  readonly requestId: string;
  readonly actorType: AuditActorType;
  readonly actorId: string;
  readonly clientIp: string;
  readonly userAgent: string;
}

/** A complete audit entry before the store numbers and chains it. */
export type AuditDraft = Omit<AuditFields, "seq">;

/** A stored audit entry: the canonical fields plus the chain hash after it. */
export interface AuditRecord extends AuditFields {
  readonly hash: Uint8Array;
}

/** The head of the audit chain: how many entries, and the hash after the last one. */
export interface AuditHead {
  readonly size: number;
  readonly head: Uint8Array;
}

/** Which audit entries to list, always in `seq` order. */
export interface AuditFilter {
  /** Only entries with `seq > after`. */
  readonly after?: number;
  readonly limit: number;
  /** Only entries about one of these agents (an empty list matches nothing). */
  readonly agentIds?: readonly string[];
  /** Only entries about one of these secrets (an empty list matches nothing). */
  readonly secretIds?: readonly string[];
  /** Only entries with `ts >= since`. */
  readonly since?: number;
}

/** The vault: made at first start, initialised once by the owner. */
export interface VaultRecord {
  readonly vaultId: string;
  readonly createdAt: number;
  readonly ownerSignPk: Uint8Array | null;
  readonly ownerEncPk: Uint8Array | null;
  readonly initializedAt: number | null;
}

/** An agent as stored. `registeredAt` is the server's clock; `createdAt` is signed in `KHK1`. */
export interface AgentRecord {
  readonly id: string;
  readonly name: string;
  readonly encPk: Uint8Array;
  readonly createdAt: number;
  readonly keySig: Uint8Array;
  readonly expiresAt: number | null;
  /** Canonical CIDR ranges its token is accepted from; empty means anywhere. */
  readonly allowedCidrs: readonly string[];
  readonly revokedAt: number | null;
  readonly lastUsedAt: number | null;
  readonly registeredAt: number;
}

/** An agent with the number of its active grants. */
export interface AgentSummary extends AgentRecord {
  readonly grantCount: number;
}

/** A new agent's registration (everything but the server-side times). */
export interface NewAgent {
  readonly id: string;
  readonly name: string;
  readonly encPk: Uint8Array;
  readonly createdAt: number;
  readonly keySig: Uint8Array;
  readonly expiresAt: number | null;
  /** Canonical CIDR ranges (core `canonicalCidrs`); empty means anywhere. */
  readonly allowedCidrs: readonly string[];
}

/** A new agent key after a rotate; `expectedEncPk` is the key the caller saw (compare-and-set). */
export interface AgentKeyUpdate {
  readonly agentId: string;
  readonly expectedEncPk: Uint8Array;
  readonly encPk: Uint8Array;
  readonly createdAt: number;
  readonly keySig: Uint8Array;
}

/** A token verifier: `HMAC-SHA256(pepper[kid], verifierMessage(token_id, auth_key))`. */
export interface NewToken {
  readonly tokenId: Uint8Array;
  readonly verifier: Uint8Array;
  readonly pepperKid: string;
}

/** What an agent token id resolves to. */
/** What authentication needs of an agent: who it is and whether its token may be used now. */
export type AgentAuthFacts = Pick<AgentRecord, "id" | "revokedAt" | "expiresAt" | "allowedCidrs">;

export interface TokenLookup {
  readonly agent: AgentAuthFacts;
  readonly verifier: Uint8Array;
  readonly pepperKid: string;
}

/** An authenticated agent: operations re-check in their transaction that this token still works. */
export interface AgentPrincipal {
  readonly agentId: string;
  readonly tokenId: Uint8Array;
}

/** A secret's metadata. */
export interface SecretRecord {
  readonly id: string;
  readonly name: string;
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly rotationRecommended: boolean;
}

/** A secret with the size of its current value and its number of active grants. */
export interface SecretSummary extends SecretRecord {
  readonly size: number;
  readonly grantCount: number;
}

/** One stored version: the `KHS1` envelope, the owner's `KHW1` wrap and its signature. */
export interface SecretVersionRecord {
  readonly secretId: string;
  readonly version: number;
  readonly value: Uint8Array;
  readonly ownerWrap: Uint8Array;
  /** The owner's `KHG1` signature over its own wrap; null on versions stored before it was kept. */
  readonly ownerSig: Uint8Array | null;
  readonly createdAt: number;
}

/** A version in a secret's history. */
export interface SecretVersionInfo {
  readonly version: number;
  readonly createdAt: number;
  readonly size: number;
}

/** An agent holding an active grant on a secret, with what the owner needs to re-wrap for it. */
export interface SecretGrantee {
  readonly agentId: string;
  readonly agentName: string;
  readonly encPk: Uint8Array;
  readonly keySig: Uint8Array;
  readonly agentCreatedAt: number;
  readonly notAfter: number;
  readonly allowedHosts: readonly string[];
}

/** The owner's read of a secret. */
export interface OwnerSecretRead {
  readonly secret: SecretRecord;
  readonly current: SecretVersionRecord;
  readonly grantees: readonly SecretGrantee[];
}

/** A stored grant: the agent's wrap of one version and the owner's signature. */
export interface GrantRecord {
  readonly agentId: string;
  readonly secretId: string;
  readonly version: number;
  readonly wrap: Uint8Array;
  readonly issuedAt: number;
  readonly notAfter: number;
  readonly allowedHosts: readonly string[];
  readonly sig: Uint8Array;
  readonly createdAt: number;
  /** Reads allowed in all, 0 for no limit. */
  readonly maxUses: number;
  /** Successful reads counted against `maxUses` (0 while there is no limit). */
  readonly uses: number;
}

/** A grant with the names the owner sees. */
export interface GrantDetail extends GrantRecord {
  readonly agentName: string;
  readonly secretName: string;
}

/**
 * A grant to store. `agentEncPk` is the agent key the caller checked the wrap and signature
 * against: the store refuses (`conflict`) if the agent's key changed since.
 */
export interface NewGrant {
  readonly agentId: string;
  readonly secretId: string;
  readonly version: number;
  readonly wrap: Uint8Array;
  readonly issuedAt: number;
  readonly notAfter: number;
  readonly allowedHosts: readonly string[];
  readonly sig: Uint8Array;
  readonly agentEncPk: Uint8Array;
}

/** A grant the owner adds with `grant add`, with its read budget. */
export interface NewLimitedGrant extends NewGrant {
  /** Reads allowed in all; absent or 0 for no limit. */
  readonly maxUses?: number;
}

/** What an agent receives for a secret it is granted. */
export interface AgentSecret {
  readonly secret: SecretRecord;
  readonly value: Uint8Array;
  readonly grant: GrantRecord;
}

/** A secret write with compare-and-set on the version. */
export interface SecretWrite {
  readonly id: string;
  readonly name: string;
  /** 0 to create, else the current version. */
  readonly expectedVersion: number;
  readonly version: number;
  readonly value: Uint8Array;
  readonly ownerWrap: Uint8Array;
  /** The owner's `KHG1` signature over `ownerWrap` (checked by the caller). */
  readonly ownerSig: Uint8Array;
  /** Must cover exactly the secret's active grants, at `version`. */
  readonly grants: readonly NewGrant[];
}

/** The outcome of a secret write. */
export interface SecretWriteResult {
  readonly id: string;
  readonly name: string;
  readonly version: number;
  readonly created: boolean;
}

/** One secret a revoked agent could reach, and what it did with it. */
export interface BlastRadiusEntry {
  readonly secretId: string;
  /** Null when the secret has since been deleted. */
  readonly secretName: string | null;
  /** It held a grant on the secret when it was revoked. */
  readonly granted: boolean;
  readonly reads: number;
  readonly firstReadAt: number | null;
  readonly lastReadAt: number | null;
}

/** The outcome of a revoke. */
export interface RevokeResult {
  readonly agent: AgentSummary;
  readonly blastRadius: readonly BlastRadiusEntry[];
  readonly alreadyRevoked: boolean;
  /** The token ids this revoke retired (none when already revoked). */
  readonly retiredTokenIds: readonly Uint8Array[];
}

/** The outcome of a rotate. */
export interface RotateResult {
  readonly agent: AgentSummary;
  /** The token ids the new token replaced. */
  readonly retiredTokenIds: readonly Uint8Array[];
}

/** The server's storage. See the file comment for the rules every method follows. */
export interface Store {
  /** The vault row, or null before first start. */
  getVault(): Promise<VaultRecord | null>;
  /** Creates the vault with `vaultId` unless one exists; returns the stored vault either way. */
  ensureVault(vaultId: string, now: number): Promise<VaultRecord>;
  /** Sets the owner's keys once (`vault.init`); null (audited as `conflict`) if already set. */
  initVault(
    ownerSignPk: Uint8Array,
    ownerEncPk: Uint8Array,
    audit: AuditRequest,
  ): Promise<VaultRecord | null>;

  /**
   * The agent and verifier behind a token id, or null (revoked agents have no token). For
   * authentication only: its result may come from a commit not yet on disk, so it must never be
   * sent as it is (every other read waits for that).
   */
  findAgentByTokenId(tokenId: Uint8Array): Promise<TokenLookup | null>;
  getAgent(agentId: string, now: number): Promise<AgentSummary | null>;
  /** The active agent with this name, else the most recently revoked one, else null. */
  findAgentByName(name: string, now: number): Promise<AgentSummary | null>;
  /** Ids of every agent that ever had this name. */
  listAgentIdsByName(name: string): Promise<string[]>;
  listAgents(now: number): Promise<AgentSummary[]>;
  /** Registers an agent, its token and its grants (`agent.create`). Conflict if id/name/token taken. */
  createAgent(
    agent: NewAgent,
    token: NewToken,
    grants: readonly NewGrant[],
    now: number,
    audit: AuditRequest,
  ): Promise<AgentSummary>;
  /**
   * Replaces an agent's key, token and grants (`agent.rotate`): the old token stops working in
   * the same transaction, and its id is recorded as retired in it too. The grants must cover
   * exactly its active grants at current versions, and the new key may not be older
   * (`createdAt`) than the current one (`conflict`). Null (audited `not_found`) if the agent
   * does not exist or is revoked.
   */
  rotateAgent(
    update: AgentKeyUpdate,
    token: NewToken,
    grants: readonly NewGrant[],
    now: number,
    audit: AuditRequest,
  ): Promise<RotateResult | null>;
  /**
   * Revokes an agent (`agent.revoke`): token and grants (with their wraps) deleted, its token id
   * recorded as retired, and every secret it held a grant on marked rotation-recommended.
   * Idempotent on an agent already revoked. Null (audited `not_found`) if there is no such agent.
   */
  revokeAgent(agentId: string, now: number, audit: AuditRequest): Promise<RevokeResult | null>;
  /**
   * Every token id ever retired by revoke or rotate. A token id, once retired, can never be
   * registered again (`createAgent` and `rotateAgent` reject it with `conflict`).
   */
  listRetiredTokenIds(): Promise<Uint8Array[]>;
  /**
   * The agent a retired token id belonged to, or null if the id was never retired (so a failed
   * authentication with a revoked or rotated-out token is still recorded under its agent).
   */
  findRetiredTokenAgent(tokenId: Uint8Array): Promise<string | null>;

  /** The agent's own record (`agent.self`); rejects `unauthenticated` if its token is gone. */
  agentSelf(principal: AgentPrincipal, now: number, audit: AuditRequest): Promise<AgentRecord>;
  /** The secrets an agent can fetch now (`secret.list`). */
  listSecretsForAgent(
    principal: AgentPrincipal,
    now: number,
    audit: AuditRequest,
  ): Promise<{ name: string; version: number }[]>;
  /**
   * An agent's fetch (`secret.read`): the current value, its wrap and grant; null when there is
   * no such secret (audited `not_found`) or no active grant at the current version, or the
   * grant's `maxUses` reads are spent (`denied`). A read under a limit counts one use in the
   * same transaction, so concurrent reads never exceed it.
   */
  getSecretForAgent(
    principal: AgentPrincipal,
    name: string,
    now: number,
    audit: AuditRequest,
  ): Promise<AgentSecret | null>;

  getSecretByName(name: string): Promise<SecretRecord | null>;
  getSecretById(id: string): Promise<SecretRecord | null>;
  getSecretVersion(secretId: string, version: number): Promise<SecretVersionRecord | null>;
  listSecrets(now: number): Promise<SecretSummary[]>;
  /** The owner's read of the current version (`secret.owner_read`), or null. */
  readSecretForOwner(
    name: string,
    now: number,
    audit: AuditRequest,
  ): Promise<OwnerSecretRead | null>;
  /** Versions oldest first, or null when there is no such secret. */
  listSecretVersions(name: string): Promise<SecretVersionInfo[] | null>;
  /** Writes a new version with compare-and-set (`secret.write`); rejects `conflict`. */
  putSecretVersion(
    write: SecretWrite,
    now: number,
    audit: AuditRequest,
  ): Promise<SecretWriteResult>;
  /** Deletes a secret with all versions, wraps and grants (`secret.delete`); false if absent. */
  deleteSecret(name: string, audit: AuditRequest): Promise<boolean>;

  /** Stored grants, optionally only those of some agents; ordered by agent then secret name. */
  listGrants(filter?: { agentIds?: readonly string[] }): Promise<GrantDetail[]>;
  listActiveGrantsForAgent(agentId: string, now: number): Promise<GrantDetail[]>;
  listActiveGrantsForSecret(secretId: string, now: number): Promise<GrantDetail[]>;
  /**
   * Adds or replaces the grant of an agent on a secret (`grant.add`), with a fresh read budget.
   * Null (audited `not_found`) when the agent is missing, revoked or expired, or the secret is
   * missing; `conflict` when the version is not current or the agent's key changed. Re-wraps by
   * `putSecretVersion` and `rotateAgent` keep a grant's budget and its uses.
   */
  addGrant(grant: NewLimitedGrant, now: number, audit: AuditRequest): Promise<GrantDetail | null>;
  /** Removes a grant and marks the secret rotation-recommended (`grant.remove`); false if absent. */
  removeGrant(agentId: string, secretId: string, audit: AuditRequest): Promise<boolean>;

  /** Appends one entry on its own. */
  appendAudit(draft: AuditDraft): Promise<AuditRecord>;
  listAudit(filter: AuditFilter): Promise<AuditRecord[]>;
  auditHead(): Promise<AuditHead>;
  /**
   * Write operations, commits and fsyncs so far (for `/metrics`: fsyncs per write is what group
   * commit saves under load), or null where the adapter does not count them.
   */
  writeStats(): WriteStats | null;

  close(): Promise<void>;
}

/** Counters of a store's writes since it was opened. */
export interface WriteStats {
  readonly operations: number;
  readonly commits: number;
  /** Null where the database flushes its log on its own (PostgreSQL: see `pg_stat_wal`). */
  readonly syncs: number | null;
}
