/**
 * Request ids: 12 random bytes, base64url (16 characters), one per request, sent back in
 * `x-request-id` and put in its log lines and audit entry. Drawn from a pool refilled 12 KiB at a
 * time: one `randomBytes` call per request was 2.7% of the server's CPU under load
 * (docs/performance.md). The ids only need to be unique and unguessable enough not to be
 * forged into someone else's log; they are not secrets.
 */
import { randomBytes } from "node:crypto";

const ID_BYTES = 12;
const POOL_IDS = 1024;

let pool: Buffer = Buffer.alloc(0);
let offset = 0;

/** A fresh request id. */
export function newRequestId(): string {
  if (offset + ID_BYTES > pool.length) {
    pool = randomBytes(ID_BYTES * POOL_IDS);
    offset = 0;
  }
  const id = pool.toString("base64url", offset, offset + ID_BYTES);
  // Each id's bytes are used once: zeroed so a later reader of the pool learns nothing.
  pool.fill(0, offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return id;
}
