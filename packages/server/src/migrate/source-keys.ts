/**
 * The keys of the SQLite server being migrated (its data directory's `pepper` and `audit-key`),
 * as the identifiers the PostgreSQL servers are held to (migration 4, `shared_keys`). Read and
 * checked before anything is copied.
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import { KeyholeError } from "@keyhole/core";
import { auditKeyFromSeed } from "../audit/audit-key.js";
import { pepperKid } from "../auth/pepper.js";
import { readKeyFile } from "../data-dir.js";
import type { SharedKeyIds } from "../store/postgres-shared-keys.js";

/**
 * The data directory's key ids, or null for a loose database file (then the first PostgreSQL
 * server records its own, and must have the pepper the tokens carry). Refuses a directory with
 * one key file and not the other, and a pepper that is not the one the agent tokens were made
 * with (`tokenPepperKids`): no server could then both verify the tokens and match the record.
 */
export function sourceKeyIds(
  dataDir: string | null,
  tokenPepperKids: readonly string[],
): SharedKeyIds | null {
  if (dataDir === null) return null;
  const pepperFile = join(dataDir, "pepper");
  const auditKeyFile = join(dataDir, "audit-key");
  const present = [existsSync(pepperFile), existsSync(auditKeyFile)];
  if (!present[0] && !present[1]) return null;
  if (!present[0] || !present[1]) {
    throw new KeyholeError(
      "config_error",
      `${dataDir} has ${present[0] ? "a pepper but no audit-key" : "an audit-key but no pepper"}: ` +
        "a server's data directory has both",
    );
  }
  const kid = pepperKid(readKeyFile(pepperFile, 32));
  if (tokenPepperKids.some((tokenKid) => tokenKid !== kid)) {
    throw new KeyholeError(
      "config_error",
      `the agent tokens in this vault were made with another pepper than ${pepperFile} (was it ` +
        "replaced, or the database restored without it?): put the original pepper back, or " +
        "rotate every agent on the SQLite server first; nothing was copied",
    );
  }
  return {
    pepperKid: kid,
    auditPublicKey: auditKeyFromSeed(readKeyFile(auditKeyFile, 32)).publicKey,
  };
}
