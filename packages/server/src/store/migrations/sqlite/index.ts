/**
 * The SQLite migrations, in order. Each is applied once, in its own transaction, and recorded in
 * `schema_migrations`; the SQL lives in TypeScript constants so `tsc` ships it with the build.
 * Never edit a released migration: add the next file.
 */
import * as initial from "./001-initial.js";
import * as ownerSigRetiredTokens from "./002-owner-sig-retired-tokens.js";
import * as agentCidrsGrantUses from "./003-agent-cidrs-grant-uses.js";

/** One schema step. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/** Every migration, by ascending version. */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  { version: 1, ...initial },
  { version: 2, ...ownerSigRetiredTokens },
  { version: 3, ...agentCidrsGrantUses },
];
