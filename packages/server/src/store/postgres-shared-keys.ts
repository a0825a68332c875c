/**
 * The check that every server on a database uses the same pepper and audit key (migration
 * 004): the first server records the pepper's key id and the audit public key; the others
 * compare theirs at start-up and refuse to run with different ones.
 */
import { KeyholeError } from "@keyhole/core";
import type { Sql } from "./postgres-db.js";

/** What a server shows of its shared keys: identifiers only, never a key. */
export interface SharedKeyIds {
  readonly pepperKid: string;
  readonly auditPublicKey: Uint8Array;
}

/**
 * Records `mine` if no server has yet; otherwise refuses keys other than the recorded ones.
 * Either way refuses a pepper that did not make the agent tokens already in the database (the
 * first server after `keyhole migrate` from a loose database file, given a new pepper, would
 * otherwise record it, and every migrated token would fail).
 */
export async function checkSharedKeys(sql: Sql, mine: SharedKeyIds, now: number): Promise<void> {
  const [foreign] = await sql`
    SELECT 1 FROM agent_tokens WHERE pepper_kid <> ${mine.pepperKid} LIMIT 1`;
  if (foreign !== undefined) {
    throw new KeyholeError(
      "config_error",
      "--pepper-file is not the pepper the agent tokens in this database were made with: give " +
        "every server a copy of the pepper of the server they came from",
    );
  }
  await recordSharedKeys(sql, mine, now);
}

/** Records `mine` if nothing is recorded yet; refuses keys other than the recorded ones. */
export async function recordSharedKeys(sql: Sql, mine: SharedKeyIds, now: number): Promise<void> {
  const auditPublicKey = Buffer.from(mine.auditPublicKey);
  await sql`
    INSERT INTO shared_keys (singleton, pepper_kid, audit_public_key, recorded_at)
    VALUES (1, ${mine.pepperKid}, ${auditPublicKey}, ${now})
    ON CONFLICT (singleton) DO NOTHING`;
  const [recorded] = await sql<{ pepper_kid: string; audit_public_key: Buffer }[]>`
    SELECT pepper_kid, audit_public_key FROM shared_keys WHERE singleton = 1`;
  if (recorded === undefined) throw new Error("the shared_keys row is missing");
  const differs = [
    ...(recorded.pepper_kid === mine.pepperKid ? [] : ["--pepper-file"]),
    ...(recorded.audit_public_key.equals(auditPublicKey) ? [] : ["--audit-key-file"]),
  ];
  if (differs.length > 0) {
    throw new KeyholeError(
      "config_error",
      `${differs.join(" and ")} ${differs.length === 1 ? "is" : "are"} not the one the ` +
        "servers already on this database use: every server must have copies of the same files",
    );
  }
}
