/**
 * The first schema. Byte strings are BLOBs, times integer milliseconds. Foreign keys cascade so
 * deleting a secret removes its versions and every wrap of it in one statement.
 */
export const name = "initial";

export const sql = `
CREATE TABLE vault (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  vault_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  owner_sign_pk BLOB,
  owner_enc_pk BLOB,
  initialized_at INTEGER
) STRICT;

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  enc_pk BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  key_sig BLOB NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  last_used_at INTEGER,
  registered_at INTEGER NOT NULL
) STRICT;
-- A name belongs to one active agent; a revoked agent keeps its name in history.
CREATE UNIQUE INDEX agents_active_name ON agents (name) WHERE revoked_at IS NULL;
CREATE INDEX agents_name ON agents (name, revoked_at);

-- One token per agent; revoking deletes the row, so the token cannot authenticate again.
CREATE TABLE agent_tokens (
  token_id BLOB PRIMARY KEY,
  agent_id TEXT NOT NULL UNIQUE REFERENCES agents (id) ON DELETE CASCADE,
  verifier BLOB NOT NULL,
  pepper_kid TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE secrets (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  current_version INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  rotation_recommended INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE secret_versions (
  secret_id TEXT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  value BLOB NOT NULL,
  owner_wrap BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (secret_id, version)
) STRICT;

-- One grant per agent and secret, holding the agent's wrap of the version it names.
CREATE TABLE grants (
  agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  secret_id TEXT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  wrap BLOB NOT NULL,
  issued_at INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  allowed_hosts TEXT NOT NULL,
  sig BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (agent_id, secret_id),
  FOREIGN KEY (secret_id, version) REFERENCES secret_versions (secret_id, version) ON DELETE CASCADE
) STRICT;
CREATE INDEX grants_secret ON grants (secret_id);

-- Append-only hash chain; seq is assigned by the store (it is part of the hashed bytes).
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  actor_type TEXT NOT NULL,
  actor_id TEXT NOT NULL,
  action TEXT NOT NULL,
  result TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  secret_id TEXT NOT NULL,
  secret_version INTEGER NOT NULL,
  client_ip TEXT NOT NULL,
  user_agent TEXT NOT NULL,
  detail TEXT NOT NULL,
  hash BLOB NOT NULL
) STRICT;
CREATE INDEX audit_agent ON audit (agent_id, seq);
CREATE INDEX audit_secret ON audit (secret_id, seq);
CREATE INDEX audit_ts ON audit (ts);

-- Guards against our own bugs, not against someone with the file: the hash chain and signed
-- checkpoints are what make tampering detectable.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;
