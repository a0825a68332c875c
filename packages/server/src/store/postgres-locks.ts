/**
 * The advisory locks that order operations across servers (docs/scaling.md).
 *
 * What an operation locks, for the length of its transaction, before it reads: an agent (by id)
 * or a secret (by name). Agent operations take their agent's lock shared, a fetch also its
 * secret's; a revoke or rotate takes the agent's exclusive, a new version, a delete or a grant
 * change the secret's. So a revoke waits for the fetches in flight and every later fetch waits
 * for it, then finds no token; no fetch is served, or logged, after the change that ended it.
 * Owner writes also take one lock of their own first, so they run one at a time.
 *
 * Advisory locks, not row locks: PostgreSQL queues them fairly, so a stream of fetches cannot
 * starve a revoke (a `FOR KEY SHARE` row lock lets each new reader in ahead of a waiting
 * writer, and a busy agent could keep its own revoke from ever committing).
 *
 * The keys are computed here, the first 64 bits of SHA-256(`keyhole/<schema>/<kind>/<id>`), with
 * the schema the database reported at start-up: vaults in different schemas never wait on each
 * other, and a collision only makes two unrelated operations wait in turn. Computing them here
 * is what lets a transaction's locks go out with its BEGIN, in one message (postgres-pool.ts):
 * the statement holds nothing but integers this process formatted, no text from a request.
 */
import { createHash } from "node:crypto";

export type LockMode = "shared" | "exclusive";

/** One advisory lock an operation takes. */
export interface AdvisoryLock {
  readonly kind: "agent" | "secret";
  /** The agent's id, or the secret's name. */
  readonly id: string;
  readonly mode: LockMode;
}

/** Keyhole's two-int advisory lock space ("Keyh"), apart from the 64-bit keys above. */
const LOCK_SPACE = 0x4b65_7968;
/** Owner writes serialise on (LOCK_SPACE, 1). */
const OWNER_WRITE_LOCK = 1;
/** Migrations run under (LOCK_SPACE, 2). */
const MIGRATION_LOCK = 2;

/** The lock's 64-bit key in the vault whose tables are in `schema`. */
export function advisoryLockKey(schema: string, lock: Pick<AdvisoryLock, "kind" | "id">): bigint {
  const digest = createHash("sha256").update(`keyhole/${schema}/${lock.kind}/${lock.id}`).digest();
  return digest.readBigInt64BE(0);
}

/** A lock by its key: what a transaction takes, computed once per operation. */
export interface KeyedLock {
  readonly key: bigint;
  readonly mode: LockMode;
}

/** `locks` by their keys, in the same order. */
export function keyedLocks(schema: string, locks: readonly AdvisoryLock[]): KeyedLock[] {
  return locks.map((lock) => ({ key: advisoryLockKey(schema, lock), mode: lock.mode }));
}

/**
 * `SELECT pg_advisory_xact_lock…(…), …`: the owner-write lock when `owner`, then `locks` in the
 * order of their keys, each once (exclusive when any asks for it so). Every transaction takes
 * its BEGIN-time locks in that one order, so transactions holding several (a batch of
 * fetches, postgres-batch.ts) never wait on each other crosswise. (A grant change takes its
 * secret's lock after a read, `PgTx.lock`: it holds no other object lock, and owner writes
 * run one at a time.) Null when there is nothing to lock.
 */
export function lockStatement(owner: boolean, locks: readonly KeyedLock[]): string | null {
  const modes = new Map<bigint, LockMode>();
  for (const { key, mode } of locks) {
    if (modes.get(key) !== "exclusive") modes.set(key, mode);
  }
  const keys = [...modes.keys()].sort(compareKey);
  const calls = owner ? [`pg_advisory_xact_lock(${LOCK_SPACE}, ${OWNER_WRITE_LOCK})`] : [];
  for (const key of keys) {
    const fn =
      modes.get(key) === "shared" ? "pg_advisory_xact_lock_shared" : "pg_advisory_xact_lock";
    calls.push(`${fn}(${integerLiteral(key)})`);
  }
  return calls.length === 0 ? null : `SELECT ${calls.join(", ")}`;
}

function compareKey(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders two operations by their lock keys, key by key (a shorter list first on a tie). */
export function compareKeys(a: readonly KeyedLock[], b: readonly KeyedLock[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const order = compareKey((a[i] as KeyedLock).key, (b[i] as KeyedLock).key);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

/** The migration lock, taken inside the migration's transaction. */
export const MIGRATION_LOCK_STATEMENT = `SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${MIGRATION_LOCK})`;

/** A 64-bit integer as SQL text; refuses anything else (it goes into a statement's text). */
function integerLiteral(value: bigint): string {
  const text = value.toString();
  if (!/^-?\d{1,19}$/.test(text)) throw new RangeError("a lock key is not a 64-bit integer");
  // Quoted: an unquoted -9223372036854775808 would be the negation of a number out of range.
  return `'${text}'::bigint`;
}

/** An agent's lock (by id). */
export function agentLock(agentId: string, mode: LockMode): AdvisoryLock {
  return { kind: "agent", id: agentId, mode };
}

/** A secret's lock (by name: what a fetch knows). */
export function secretLock(name: string, mode: LockMode): AdvisoryLock {
  return { kind: "secret", id: name, mode };
}
