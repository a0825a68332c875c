// `keyhole migrate` end to end (issue 6): a real server's data directory, filled through the CLI
// and the SDK, copied to a fresh PostgreSQL schema by the real executable. Refused while the
// server runs; once it is stopped, copied with a summary that names what to carry over and
// never the database password; refused a second time (the target is no longer empty).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Vault } from "@keyhole/sdk";
// The server package's driver (hoisted), used here only to make and inspect a test schema.
import postgres from "postgres";
import {
  cleanEnv,
  type E2eContext,
  e2eContext,
  type ServerProcess,
  startServerProcess,
} from "./harness.js";

/** The test server scripts/test.mjs starts; under CI a missing one is an error, never a skip. */
function pgTestUrl(): string | null {
  const url = process.env.KEYHOLE_TEST_DATABASE_URL;
  if (url !== undefined && url !== "") return url;
  if (process.env.CI === "true") throw new Error("CI must run the PostgreSQL tests");
  return null;
}

const url = pgTestUrl();

if (url === null) {
  describe("keyhole migrate, end to end", () => {
    it("needs a PostgreSQL test server (KEYHOLE_TEST_DATABASE_URL)", (t) => {
      t.skip("no PostgreSQL here: see README, 'Running the PostgreSQL tests'");
    });
  });
} else {
  describe("keyhole migrate, end to end", () => {
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const schema = `e2e_${randomBytes(8).toString("hex")}`;
    const password = decodeURIComponent(new URL(url).password);
    let ctx: E2eContext;
    let server: ServerProcess;
    let dataDir: string;

    before(async () => {
      assert.ok(password.length >= 8, "the test URL carries a password to look for");
      await admin`CREATE SCHEMA ${admin(schema)}`;
      ctx = await e2eContext();
      dataDir = join(ctx.dir, "data");
      server = await startServerProcess(dataDir, cleanEnv(ctx.dir));
      ctx.env.KEYHOLE_ADDR = server.url;
      await ctx.ok(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
      await ctx.ok(["secret", "set", "db-password"], "s3cr3t-value");
      const tokenFile = join(ctx.dir, "bot.token");
      await ctx.ok(["agent", "create", "bot", "--grant", "db-password", "--token-file", tokenFile]);
      await ctx.ok(["agent", "create", "old", "--token-file", join(ctx.dir, "old.token")]);
      await ctx.ok(["agent", "revoke", "old"]);
      const vault = new Vault({ addr: server.url, tokenFile });
      try {
        assert.equal(await vault.get("db-password"), "s3cr3t-value");
      } finally {
        vault.close();
      }
    });
    after(async () => {
      await server?.process.stop("SIGTERM");
      await ctx?.cleanup();
      await admin`DROP SCHEMA IF EXISTS ${admin(schema)} CASCADE`;
      await admin.end({ timeout: 5 });
    });

    const migrate = () =>
      ctx.keyhole(["migrate", "--from", `sqlite:${dataDir}`, "--to-schema", schema], {
        env: { KEYHOLE_DATABASE_URL: url },
      });

    it("refuses while the server runs, copies once it is stopped, then refuses again", async () => {
      const busy = await migrate();
      assert.equal(busy.code, 1);
      assert.match(busy.stderr, /keyhole: stop the server first \(pid \d+ uses /);
      assert.equal((await server.process.stop("SIGTERM")).code, 0);

      const run = await migrate();
      assert.equal(run.code, 0, run.stderr);
      for (const output of [run.stdout, run.stderr]) {
        assert.ok(!output.includes(password), "the database password is never printed");
      }
      assert.match(run.stderr, /verifying the source's audit chain…/);
      assert.match(run.stderr, /reading back from PostgreSQL and verifying…/);
      assert.match(
        run.stdout,
        /^Migrated .*keyhole\.db\n {6}to postgres:\/\/127\.0\.0\.1:\d+\/\w+ /,
      );
      assert.match(run.stdout, new RegExp(`\\(schema ${schema}\\) in \\d+\\.\\d s\\.`));
      assert.match(run.stdout, /\n {2}agents {10} +2\n/);
      assert.match(run.stdout, /\n {2}retired_tokens {2} +1\n/);
      assert.match(run.stdout, /\n {2}audit {11} +\d+ {2}head [0-9a-f]{16}… \(chain verified/);
      assert.match(run.stdout, /\/pepper: every server needs a copy \(--pepper-file\)/);
      assert.match(run.stdout, /\/audit-key: every server needs a copy \(--audit-key-file\)/);

      const [agents] = await admin`SELECT count(*)::int AS n FROM ${admin(schema)}.agents`;
      assert.equal(agents?.n, 2);
      const [head] = await admin`SELECT seq::int AS seq FROM ${admin(schema)}.audit_head`;
      assert.ok((head?.seq as number) > 5);

      const again = await migrate();
      assert.equal(again.code, 1);
      assert.match(again.stderr, /keyhole: the target database is not empty/);
    });
  });
}
