/**
 * What `keyhole migrate` copies from SQLite to PostgreSQL: the tables, in an order that satisfies
 * the foreign keys, with the columns both schemas share, and a digest of a table's rows that is
 * computed alike from either side, so the copy can be checked against what was read.
 *
 * The column lists are explicit rather than `SELECT *`: a column added by a later migration on
 * one side only must fail the schema test (sqlite-to-postgres.test.ts), not be dropped silently.
 */
import { createHash } from "node:crypto";

/** The SQLite schema version the copy is written for: the one the PostgreSQL schema mirrors. */
export const COPIED_SQLITE_VERSION = 3;

/**
 * The PostgreSQL schema version the copy was last checked against: a new migration must be
 * reviewed here (a table to copy, or one more for `POSTGRES_TABLES_NOT_COPIED`). Version 3
 * adds a function only (the audit append): the copy writes the chain's rows as they are.
 */
export const COPIED_POSTGRES_VERSION = 4;

/** PostgreSQL tables that are not vault data, and why nothing is copied into them. */
export const POSTGRES_TABLES_NOT_COPIED: Readonly<Record<string, string>> = {
  keyhole_migrations: "written by the migrations themselves",
  audit_head: "set to the last audit entry copied",
  // Shared authentication state (migration 2). A SQLite server keeps its own in memory only,
  // so there is nothing to carry: limits and the replay window start afresh, as they do when
  // a SQLite server restarts.
  auth_limits: "failed-authentication limits, kept in memory by a SQLite server",
  auth_nonces: "owner request nonces, kept in memory by a SQLite server",
  // Migration 4: the key ids are recorded by the first server to start on the database.
  shared_keys: "the pepper's and audit key's ids, recorded by the first server to start",
};

/** One table to copy. */
export interface TableSpec {
  readonly name: string;
  /** The columns copied, with the same name and meaning on both sides. */
  readonly columns: readonly string[];
  /** SQLite columns not copied: PostgreSQL derives them (agents' `last_used_at`: the log). */
  readonly sqliteOnly: readonly string[];
  /** PostgreSQL columns it fills itself (`retired_tokens.ord`, the retirement order). */
  readonly postgresOnly: readonly string[];
  /**
   * Rows per SQLite page and per multi-row INSERT: fewer where a row can be large (a secret
   * version holds the value's envelope), so a page stays a few MB at most.
   */
  readonly pageRows: number;
  /**
   * The order of the rows is data: SQLite's rowid order must become PostgreSQL's `ord` order
   * (the revoked-token list is rebuilt in it), so the digest covers each row's position.
   */
  readonly orderBy: string | null;
  /** Checked by the hash chain instead of a digest (every column is in the hashed bytes). */
  readonly chained: boolean;
}

function table(
  name: string,
  columns: readonly string[],
  extra: Partial<Omit<TableSpec, "name" | "columns">> = {},
): TableSpec {
  return {
    name,
    columns,
    sqliteOnly: [],
    postgresOnly: [],
    pageRows: 1_000,
    orderBy: null,
    chained: false,
    ...extra,
  };
}

/** Every table of the vault, parents before children. */
export const TABLES: readonly TableSpec[] = [
  table("vault", [
    "singleton",
    "vault_id",
    "created_at",
    "owner_sign_pk",
    "owner_enc_pk",
    "initialized_at",
  ]),
  table(
    "agents",
    [
      "id",
      "name",
      "enc_pk",
      "created_at",
      "key_sig",
      "expires_at",
      "revoked_at",
      "registered_at",
      "allowed_cidrs",
    ],
    { sqliteOnly: ["last_used_at"] },
  ),
  table("agent_tokens", ["token_id", "agent_id", "verifier", "pepper_kid", "created_at"]),
  table("retired_tokens", ["token_id", "agent_id", "reason", "retired_at"], {
    postgresOnly: ["ord"],
    orderBy: "ord",
  }),
  table("secrets", [
    "id",
    "name",
    "current_version",
    "created_at",
    "updated_at",
    "rotation_recommended",
  ]),
  table(
    "secret_versions",
    ["secret_id", "version", "value", "owner_wrap", "owner_sig", "created_at"],
    { pageRows: 64 },
  ),
  table("grants", [
    "agent_id",
    "secret_id",
    "version",
    "wrap",
    "issued_at",
    "not_after",
    "allowed_hosts",
    "sig",
    "created_at",
    "max_uses",
    "uses",
  ]),
  table(
    "audit",
    [
      "seq",
      "ts",
      "request_id",
      "actor_type",
      "actor_id",
      "action",
      "result",
      "agent_id",
      "secret_id",
      "secret_version",
      "client_ip",
      "user_agent",
      "detail",
      "hash",
    ],
    { chained: true },
  ),
];

/** A row as either driver gives it: column name to value. */
export type Row = Readonly<Record<string, unknown>>;

const TAG_NULL = Buffer.from([0]);
const TAG_NUMBER = 1;
const TAG_TEXT = 2;
const TAG_BYTES = 3;

/**
 * An order-independent digest of a table's rows: the XOR of one SHA-256 per row over an
 * unambiguous encoding of its copied columns (and its position, for an ordered table). Every
 * table has a primary key, so no two rows are equal and none cancel out. It guards against our
 * own bugs and the drivers' conversions (a BLOB cut short, a number rounded), not an attacker.
 */
export class TableDigest {
  readonly #columns: readonly string[];
  readonly #value = new Uint8Array(32);
  #rows = 0;

  constructor(spec: TableSpec) {
    this.#columns = spec.columns;
  }

  get rows(): number {
    return this.#rows;
  }

  /** Adds one row; `position` (1-based) only for an ordered table. */
  add(row: Row, position: number | null): void {
    const hash = createHash("sha256");
    if (position !== null) hash.update(`#${position};`);
    for (const column of this.#columns) encodeValue(hash, row[column]);
    const digest = hash.digest();
    for (let i = 0; i < 32; i++)
      this.#value[i] = (this.#value[i] as number) ^ (digest[i] as number);
    this.#rows += 1;
  }

  equals(other: TableDigest): boolean {
    return this.#rows === other.#rows && Buffer.compare(this.#value, other.#value) === 0;
  }
}

function encodeValue(hash: ReturnType<typeof createHash>, value: unknown): void {
  if (value === null || value === undefined) {
    hash.update(TAG_NULL);
    return;
  }
  const head = Buffer.alloc(5);
  let body: Buffer;
  if (typeof value === "number") {
    head[0] = TAG_NUMBER;
    body = Buffer.alloc(8);
    body.writeDoubleBE(value);
  } else if (typeof value === "string") {
    head[0] = TAG_TEXT;
    body = Buffer.from(value, "utf8");
  } else if (value instanceof Uint8Array) {
    head[0] = TAG_BYTES;
    body = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  } else {
    // Neither schema has another type: a value of one means a driver changed how it maps.
    throw new Error(`unexpected column value type ${typeof value}`);
  }
  head.writeUInt32BE(body.length, 1);
  hash.update(head);
  hash.update(body);
}
