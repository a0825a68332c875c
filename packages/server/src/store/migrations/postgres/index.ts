/**
 * The PostgreSQL migrations, in order. Whichever server starts first applies the pending ones,
 * all in one transaction under an advisory lock (postgres-db.ts); the others wait for it, then
 * find nothing to do. Never edit a released migration: add the next file.
 */
import type { Migration } from "../sqlite/index.js";
import * as initial from "./001-initial.js";
import * as sharedAuthState from "./002-shared-auth-state.js";
import * as auditAppend from "./003-audit-append.js";
import * as sharedKeys from "./004-shared-keys.js";

/** Every migration, by ascending version. */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  { version: 1, ...initial },
  { version: 2, ...sharedAuthState },
  { version: 3, ...auditAppend },
  { version: 4, ...sharedKeys },
];
