/**
 * The row lookups and writes the PostgreSQL operations share, as tagged-template queries (every
 * value a bound parameter). Rows have the SQLite schema's column names and JavaScript types
 * (BYTEA as Buffer, BIGINT as number), so sqlite-rows.ts maps both adapters' rows to records.
 */
import { KeyholeError } from "@keyhole/core";
import type { Sql } from "./postgres-db.js";
import {
  type AgentRow,
  type GrantKept,
  type GrantRow,
  type SecretRow,
  toAgentSummary,
  type VersionRow,
} from "./sqlite-rows.js";
import type { AgentPrincipal, AgentSummary, NewGrant, NewToken } from "./store.js";

/** `Buffer` for a BYTEA parameter (the driver binds Buffers, not plain Uint8Arrays). */
export function pgBytes(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * An agent's columns as `AgentRow` (`a`), with `last_used_at` read from the audit log: the time
 * of its newest entry as an agent. PostgreSQL keeps no column for it, so that concurrent fetches
 * by one agent never queue on its `agents` row (index `audit_agent_use`).
 */
export function agentColumns(sql: Sql) {
  return sql`a.*, (SELECT u.ts FROM audit u WHERE u.actor_type = 'agent' AND u.actor_id = a.id
    ORDER BY u.seq DESC LIMIT 1) AS last_used_at`;
}

/** A grant `g` joined with its agent `a` is active when neither has expired nor been revoked. */
export function activeGrant(sql: Sql, now: number) {
  return sql`a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > ${now})
    AND (g.not_after = 0 OR g.not_after > ${now})`;
}

/** Agents with their active grant count (0 once revoked or expired), from `agents a`. */
export function agentSummarySelect(sql: Sql, now: number) {
  return sql`SELECT ${agentColumns(sql)}, CASE WHEN a.revoked_at IS NULL
      AND (a.expires_at IS NULL OR a.expires_at > ${now})
    THEN (SELECT COUNT(*) FROM grants g WHERE g.agent_id = a.id
      AND (g.not_after = 0 OR g.not_after > ${now})) ELSE 0 END AS grant_count
    FROM agents a`;
}

/** Grants with their agent and secret names (`g`, `a`, `s`). */
export function grantDetailSelect(sql: Sql) {
  return sql`SELECT g.*, a.name AS agent_name, s.name AS secret_name
    FROM grants g JOIN agents a ON a.id = g.agent_id JOIN secrets s ON s.id = g.secret_id`;
}

export async function agentRow(sql: Sql, id: string): Promise<AgentRow | undefined> {
  const [row] = await sql<AgentRow[]>`SELECT ${agentColumns(sql)} FROM agents a WHERE a.id = ${id}`;
  return row;
}

export async function agentSummary(
  sql: Sql,
  id: string,
  now: number,
): Promise<AgentSummary | null> {
  const [row] = await sql<(AgentRow & { grant_count: number })[]>`
    ${agentSummarySelect(sql, now)} WHERE a.id = ${id}`;
  return row ? toAgentSummary(row) : null;
}

export async function secretByName(sql: Sql, name: string): Promise<SecretRow | undefined> {
  const [row] = await sql<SecretRow[]>`SELECT * FROM secrets WHERE name = ${name}`;
  return row;
}

export async function secretById(sql: Sql, id: string): Promise<SecretRow | undefined> {
  const [row] = await sql<SecretRow[]>`SELECT * FROM secrets WHERE id = ${id}`;
  return row;
}

export async function versionRow(
  sql: Sql,
  secretId: string,
  version: number,
): Promise<VersionRow | undefined> {
  const [row] = await sql<VersionRow[]>`
    SELECT * FROM secret_versions WHERE secret_id = ${secretId} AND version = ${version}`;
  return row;
}

/** Active grants of one agent (`by: "agent"`) or one secret, with the agent's key. */
export async function activeGrantRows(
  sql: Sql,
  by: "agent" | "secret",
  id: string,
  now: number,
): Promise<(GrantRow & { enc_pk: Buffer })[]> {
  const match = by === "agent" ? sql`g.agent_id = ${id}` : sql`g.secret_id = ${id}`;
  return sql<(GrantRow & { enc_pk: Buffer })[]>`
    SELECT g.*, a.enc_pk FROM grants g JOIN agents a ON a.id = g.agent_id
    WHERE ${match} AND ${activeGrant(sql, now)}`;
}

/** Inserts an agent's token; a token id in use or ever retired is a conflict. */
export async function insertToken(
  sql: Sql,
  agentId: string,
  token: NewToken,
  now: number,
): Promise<void> {
  const tokenId = pgBytes(token.tokenId);
  const [taken] = await sql`
    SELECT 1 FROM agent_tokens WHERE token_id = ${tokenId}
    UNION ALL SELECT 1 FROM retired_tokens WHERE token_id = ${tokenId} LIMIT 1`;
  // A retired token id stays dead: reusing it would make an agent that can never authenticate.
  if (taken) throw new KeyholeError("conflict", "the token id is taken");
  await sql`
    INSERT INTO agent_tokens (token_id, agent_id, verifier, pepper_kid, created_at)
    VALUES (${tokenId}, ${agentId}, ${pgBytes(token.verifier)}, ${token.pepperKid}, ${now})`;
}

/**
 * Deletes the agent's token and records its id in `retired_tokens`, in the caller's
 * transaction; returns the ids retired.
 */
export async function retireTokens(
  sql: Sql,
  agentId: string,
  reason: "revoke" | "rotate",
  now: number,
): Promise<Uint8Array[]> {
  const rows = await sql<{ token_id: Buffer }[]>`
    DELETE FROM agent_tokens WHERE agent_id = ${agentId} RETURNING token_id`;
  for (const row of rows) {
    await sql`
      INSERT INTO retired_tokens (token_id, agent_id, reason, retired_at)
      VALUES (${row.token_id}, ${agentId}, ${reason}, ${now})`;
  }
  return rows.map((row) => new Uint8Array(row.token_id));
}

/**
 * Inserts a grant after checking that it names the secret's current version; `kept` carries
 * what a re-wrap keeps from the grant it replaces.
 */
export async function insertGrant(sql: Sql, grant: NewGrant, kept: GrantKept): Promise<void> {
  const secret = await secretById(sql, grant.secretId);
  if (!secret || secret.current_version !== grant.version) {
    throw new KeyholeError("conflict", "the secret changed");
  }
  await sql`
    INSERT INTO grants (agent_id, secret_id, version, wrap, issued_at, not_after,
      allowed_hosts, sig, created_at, max_uses, uses)
    VALUES (${grant.agentId}, ${grant.secretId}, ${grant.version}, ${pgBytes(grant.wrap)},
      ${grant.issuedAt}, ${grant.notAfter}, ${JSON.stringify(grant.allowedHosts)},
      ${pgBytes(grant.sig)}, ${kept.createdAt}, ${kept.maxUses}, ${kept.uses})`;
}

/** What `checkPrincipal` reads: the token's agent's revocation and expiry. */
export interface PrincipalRow {
  principal_revoked_at: number | null;
  principal_expires_at: number | null;
}

/** The statement reading a principal's `PrincipalRow`, none when its token is gone. */
export function principalRowSql(sql: Sql, principal: AgentPrincipal) {
  return sql`
    SELECT a.revoked_at AS principal_revoked_at, a.expires_at AS principal_expires_at
    FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
    WHERE t.token_id = ${pgBytes(principal.tokenId)} AND t.agent_id = ${principal.agentId}`;
}

/**
 * Whether the token still authenticates, from its `PrincipalRow`: `unauthenticated` unless the
 * row exists and its agent is neither revoked nor expired.
 */
export function principalStillValid<T extends PrincipalRow>(
  row: T | undefined,
  _principal: AgentPrincipal,
  now: number,
): asserts row is T {
  if (
    !row ||
    row.principal_revoked_at !== null ||
    (row.principal_expires_at !== null && row.principal_expires_at <= now)
  ) {
    throw new KeyholeError("unauthenticated");
  }
}

/**
 * Checks inside the transaction that the agent's token still authenticates; the caller holds
 * the agent's lock (`lockAgent`), so a revoke or rotate cannot commit between this check and
 * the commit. Returns the agent's id.
 */
export async function checkPrincipal(
  sql: Sql,
  principal: AgentPrincipal,
  now: number,
): Promise<string> {
  const [row] = await sql<PrincipalRow[]>`${principalRowSql(sql, principal)}`;
  principalStillValid(row, principal, now);
  return principal.agentId;
}
