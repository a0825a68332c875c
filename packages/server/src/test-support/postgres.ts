/**
 * The PostgreSQL server the tests use: `scripts/test.mjs` starts one (scripts/pg-server.mjs) and
 * passes its URL in KEYHOLE_TEST_DATABASE_URL. Under CI a missing server is an error, never a
 * skip: the PostgreSQL adapter must be tested on every run.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import postgres from "postgres";
import type { TestDatabase } from "./harness.js";

/** The test server's URL, or null when there is none (outside CI only). */
export function pgTestUrl(): string | null {
  const url = process.env.KEYHOLE_TEST_DATABASE_URL;
  if (url !== undefined && url !== "") return url;
  if (process.env.CI === "true") {
    throw new Error("CI must run the PostgreSQL tests, but KEYHOLE_TEST_DATABASE_URL is not set");
  }
  return null;
}

/**
 * For a file whose PostgreSQL tests cannot run on this machine (no server, outside CI): one
 * skipped test that says why, in place of the file's suites.
 */
export function skipWithoutPostgres(title: string): void {
  describe(title, () => {
    it("needs a PostgreSQL test server (KEYHOLE_TEST_DATABASE_URL)", (t) => {
      t.skip("no PostgreSQL here: see README, 'Running the PostgreSQL tests'");
    });
  });
}

/** One test file's admin connection to the test server, making and dropping schemas. */
export class TestSchemas {
  readonly admin: postgres.Sql;

  constructor(url: string) {
    this.admin = postgres(url, { max: 2, onnotice: () => {} });
  }

  /**
   * A fresh, empty schema `<prefix>_<random>` (test files and runs never see each other's
   * data); `drop` removes it with everything in it.
   */
  async fresh(prefix = "t"): Promise<{ schema: string; drop: () => Promise<void> }> {
    const schema = `${prefix}_${randomBytes(8).toString("hex")}`;
    await this.admin`CREATE SCHEMA ${this.admin(schema)}`;
    return {
      schema,
      drop: async () => void (await this.admin`DROP SCHEMA ${this.admin(schema)} CASCADE`),
    };
  }

  /** Closes the admin connection (after the file's tests). */
  async end(): Promise<void> {
    await this.admin.end({ timeout: 5 });
  }
}

/** A fresh schema on the test server, with the shared pepper and audit key files servers need. */
export interface SharedTestDatabase extends TestDatabase {
  /** Drops the schema and deletes the key files. */
  drop(): Promise<void>;
}

/**
 * Creates an empty schema `t_<random>` (so test files and runs never see each other's data) and
 * two key files of 32 random bytes, mode 0600, as an operator would copy to every server.
 */
export async function sharedTestDatabase(url: string): Promise<SharedTestDatabase> {
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const schema = `t_${randomBytes(8).toString("hex")}`;
  const keyDir = mkdtempSync(join(tmpdir(), "keyhole-shared-keys-"));
  try {
    await admin`CREATE SCHEMA ${admin(schema)}`;
  } catch (error) {
    await admin.end({ timeout: 5 });
    rmSync(keyDir, { recursive: true, force: true });
    throw error;
  }
  const pepperFile = join(keyDir, "pepper");
  const auditKeyFile = join(keyDir, "audit-key");
  writeFileSync(pepperFile, randomBytes(32), { mode: 0o600 });
  writeFileSync(auditKeyFile, randomBytes(32), { mode: 0o600 });
  return {
    url,
    schema,
    pepperFile,
    auditKeyFile,
    drop: async () => {
      try {
        await admin`DROP SCHEMA IF EXISTS ${admin(schema)} CASCADE`;
      } finally {
        await admin.end({ timeout: 5 });
        rmSync(keyDir, { recursive: true, force: true });
      }
    },
  };
}
