/**
 * The second schema step:
 *
 * - `secret_versions.owner_sig`: the owner's `KHG1` signature over its own wrap of the version
 *   (docs/api.md). Rows written before this step keep NULL; every new write carries one.
 * - `retired_tokens`: every token id that stopped working by revoke or rotate, written in the
 *   same transaction. The server copies them to `DATA_DIR/revoked-tokens`, outside the
 *   database, so restoring an older database cannot bring a dead token back; at start-up this
 *   table is what lets it re-add an id whose append a crash cut short.
 */
export const name = "owner-sig-retired-tokens";

export const sql = `
ALTER TABLE secret_versions ADD COLUMN owner_sig BLOB;

CREATE TABLE retired_tokens (
  token_id BLOB PRIMARY KEY,
  agent_id TEXT NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('revoke', 'rotate')),
  retired_at INTEGER NOT NULL
) STRICT;

-- A retired token id never comes back to life: guard against our own bugs.
CREATE TRIGGER retired_tokens_no_update BEFORE UPDATE ON retired_tokens
BEGIN SELECT RAISE(ABORT, 'retired tokens are append-only'); END;
CREATE TRIGGER retired_tokens_no_delete BEFORE DELETE ON retired_tokens
BEGIN SELECT RAISE(ABORT, 'retired tokens are append-only'); END;
`;
