/**
 * What identifies the keys every server on the database must share (issue 6): the pepper's key
 * id (a hash prefix that names it without revealing it, auth/pepper.ts) and the audit key's
 * public half. Never the keys: the pepper stays out of the database so that a dump is not
 * enough to test stolen tokens offline (SECURITY.md).
 *
 * The first server to start records its own; every later one compares and refuses to start
 * with a different pepper or audit key, which would otherwise show up as every token made
 * through one server failing on the others, and checkpoints signed by two keys.
 */
export const name = "shared-keys";

export const sql = `
CREATE TABLE shared_keys (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  pepper_kid TEXT NOT NULL,
  audit_public_key BYTEA NOT NULL,
  recorded_at BIGINT NOT NULL
);
`;
