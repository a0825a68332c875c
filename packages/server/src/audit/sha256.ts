/**
 * The synchronous SHA-256 the audit chain uses (core takes it as a parameter so it stays free of
 * `node:*`): the store hashes inside a synchronous SQLite transaction.
 */
import { createHash } from "node:crypto";
import type { Sha256Sync } from "@keyhole/core";

/** SHA-256 with `node:crypto`. */
export const sha256Sync: Sha256Sync = (data) =>
  new Uint8Array(createHash("sha256").update(data).digest());
