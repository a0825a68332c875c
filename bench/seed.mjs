// Filling a Keyhole database for the benchmarks, two ways:
//
// - through the server's own store (`fillAuditThroughStore`): every entry appended as an audited
//   request appends it, group commit included. Realistic, and about 5,000–10,000 entries/s.
// - bulk SQL on the stopped server's SQLite file (`openSeedDb` and the `seed*` functions): one
//   transaction, rows shaped as the store writes them (packages/server/src/store/sqlite-*.ts,
//   migrations 001–003). Audit entries are hashed onto the existing chain exactly as
//   `SqliteDb.appendDraft` does, so the log still verifies; filler secrets and agents carry
//   random bytes where ciphertexts, wraps and signatures go (nothing reads them on the fetch
//   path, and the server checks none of them at start-up).

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  AUDIT_GENESIS,
  chainAuditHash,
  formatAgentAuthorization,
  newId,
  parseToken,
} from "@keyhole/core";
import Database from "better-sqlite3";
import { sha256Sync } from "../packages/server/dist/audit/sha256.js";

const bin = fileURLToPath(new URL("../packages/cli/bin/keyhole.js", import.meta.url));

/**
 * Agent reads as the server records them: one agent, one secret, a fresh request id each,
 * entry `seq` stamped `ts0 + 3 * seq` ms.
 */
export function readDrafts(agentId, secretId, ts0 = Date.now()) {
  return (seq) => ({
    ts: ts0 + seq * 3,
    requestId: randomBytes(12).toString("base64url"),
    actorType: "agent",
    actorId: agentId,
    action: "secret.read",
    result: "ok",
    agentId,
    secretId,
    secretVersion: 1,
    clientIp: "127.0.0.1",
    userAgent: "keyhole-sdk/0.1.0",
    detail: "",
  });
}

/**
 * Appends `draft(1..n)` through `store.appendAudit` (the server must be stopped). Many appends
 * per event-loop turn share a commit (group commit, 256 per fsync), as under load; at most
 * 1,024 at a time, the store's bound on writes waiting for their fsync (`MAX_UNSYNCED` in
 * packages/server/src/store/group-commit.ts: more are refused with `unavailable`).
 */
export async function fillAuditThroughStore(store, draft, n) {
  const inFlight = 1024;
  for (let first = 1; first <= n; first += inFlight) {
    const appends = [];
    for (let s = first; s < Math.min(first + inFlight, n + 1); s++) {
      appends.push(store.appendAudit(draft(s)));
    }
    await Promise.all(appends);
  }
}

/** `keyhole ARGS` with `env`, `input` on stdin; stdout as text. */
export function keyhole(env, args, input = "") {
  return execFileSync(process.execPath, [bin, ...args], { env, input, stdio: "pipe" }).toString();
}

/**
 * The fetch benchmark's vault, made with the real CLI against a fresh server (`server`, from
 * keyhole-server.mjs): the owner, secret `demo` (64 bytes) and agent `bench` granted it, its
 * token in DIR/bench.token. Resolves the agent's precomputed `Authorization` header.
 */
export async function setUpFetchVault(env, server, dir) {
  env.KEYHOLE_ADDR = server.addr;
  keyhole(env, ["init", "--bootstrap-code", server.code]);
  keyhole(env, ["secret", "set", "demo"], "x".repeat(64));
  const tokenFile = join(dir, "bench.token");
  keyhole(env, ["agent", "create", "bench", "--grant", "demo", "--token-file", tokenFile]);
  const token = parseToken(readFileSync(tokenFile, "utf8").trim());
  const { authKey } = await token.deriveKeys();
  const authorization = formatAgentAuthorization(token.tokenId, authKey);
  token.destroy();
  return { authorization, tokenFile };
}

/**
 * Opens a stopped server's database for bulk seeding. The server switches the file back to
 * WAL when it opens it; a rollback journal writes each new page once (WAL would write it twice,
 * then checkpoint), and a crash while seeding loses nothing anyone needs (synchronous off).
 */
export function openSeedDb(path) {
  const db = new Database(path);
  db.pragma("journal_mode = DELETE");
  db.pragma("synchronous = OFF");
  db.pragma("foreign_keys = ON");
  db.pragma("cache_size = -262144");
  return db;
}

/**
 * Closes a seeded database and flushes it to disk. Without this the seeding leaves hundreds of
 * MB of dirty pages (synchronous off), and the server's first WAL checkpoint, whose fsync of
 * the database file must write them all, stalls the requests measured then.
 */
export function closeSeedDb(db) {
  const path = db.name;
  db.close();
  const fd = openSync(path, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Random filler bytes, cut from one pool (a fresh `randomBytes` per column is slow). */
function filler() {
  let pool = randomBytes(0);
  return (n) => {
    if (pool.length < n) pool = randomBytes(1 << 20);
    const out = pool.subarray(0, n);
    pool = pool.subarray(n);
    return out;
  };
}

/** The ids the set-up made: the `bench` agent, the `demo` secret and the token's pepper kid. */
export function benchIds(db) {
  const agent = db.prepare("SELECT id FROM agents WHERE name = 'bench'").get();
  const secret = db.prepare("SELECT id FROM secrets WHERE name = 'demo'").get();
  const token = db.prepare("SELECT pepper_kid FROM agent_tokens WHERE agent_id = ?").get(agent.id);
  return { agentId: agent.id, secretId: secret.id, pepperKid: token.pepper_kid };
}

/**
 * Adds `n` secrets `filler-000001`… with one version each (a 64-byte value's envelope, an owner
 * wrap and signature of realistic sizes, random bytes). One transaction.
 */
export function seedSecrets(db, n) {
  const bytes = filler();
  const now = Date.now();
  const secret = db.prepare(
    `INSERT INTO secrets (id, name, current_version, created_at, updated_at)
     VALUES (?, ?, 1, ?, ?)`,
  );
  const version = db.prepare(
    `INSERT INTO secret_versions (secret_id, version, value, owner_wrap, owner_sig, created_at)
     VALUES (?, 1, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (let i = 1; i <= n; i++) {
      const id = newId("secret");
      secret.run(id, `filler-${String(i).padStart(6, "0")}`, now, now);
      version.run(id, bytes(121), bytes(113), bytes(64), now);
    }
  })();
}

/**
 * Adds `n` live agents `filler-agent-000001`…, each with a token (random id and verifier) and a
 * grant of `secretId`'s current version (random wrap and signature). One transaction.
 */
export function seedAgents(db, n, secretId, pepperKid) {
  const bytes = filler();
  const now = Date.now();
  const { current_version: version } = db
    .prepare("SELECT current_version FROM secrets WHERE id = ?")
    .get(secretId);
  const agent = db.prepare(
    `INSERT INTO agents (id, name, enc_pk, created_at, key_sig, expires_at, allowed_cidrs,
       registered_at) VALUES (?, ?, ?, ?, ?, NULL, '[]', ?)`,
  );
  const token = db.prepare(
    `INSERT INTO agent_tokens (token_id, agent_id, verifier, pepper_kid, created_at)
     VALUES (?, ?, ?, ?, ?)`,
  );
  const grant = db.prepare(
    `INSERT INTO grants (agent_id, secret_id, version, wrap, issued_at, not_after,
       allowed_hosts, sig, created_at, max_uses, uses) VALUES (?, ?, ?, ?, ?, 0, '[]', ?, ?, 0, 0)`,
  );
  db.transaction(() => {
    for (let i = 1; i <= n; i++) {
      const id = newId("agent");
      agent.run(id, `filler-agent-${String(i).padStart(6, "0")}`, bytes(32), now, bytes(64), now);
      token.run(bytes(16), id, bytes(32), pepperKid, now);
      grant.run(id, secretId, version, bytes(113), now, bytes(64), now);
    }
  })();
}

/**
 * Appends `draft(1..n)` to the audit log in one transaction, hashed onto the current head as
 * the store hashes (core `chainAuditHash`, the server's `sha256Sync`): the chain stays valid.
 */
export function seedAudit(db, draft, n) {
  const last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get();
  const insert = db.prepare(
    `INSERT INTO audit (seq, ts, request_id, actor_type, actor_id, action, result, agent_id,
       secret_id, secret_version, client_ip, user_agent, detail, hash)
     VALUES (@seq, @ts, @requestId, @actorType, @actorId, @action, @result, @agentId,
       @secretId, @secretVersion, @clientIp, @userAgent, @detail, @hash)`,
  );
  db.transaction(() => {
    let head = last === undefined ? AUDIT_GENESIS : new Uint8Array(last.hash);
    const first = (last?.seq ?? 0) + 1;
    for (let seq = first; seq < first + n; seq++) {
      const fields = { ...draft(seq), seq };
      head = chainAuditHash(head, fields, sha256Sync);
      insert.run({ ...fields, hash: Buffer.from(head.buffer, head.byteOffset, head.length) });
    }
  })();
}
