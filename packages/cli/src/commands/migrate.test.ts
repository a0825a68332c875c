// `keyhole migrate` argument handling (issue 6): its help, and usage errors that never echo the
// target URL, which holds the database password. The copy itself is tested in the server
// package (migrate/sqlite-to-postgres.test.ts) and end to end in e2e/migrate.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCli } from "../cli.js";
import { memoryIo } from "../test-support/memory-io.js";
import { describeTarget } from "./migrate.js";

const PASSWORD = "hunter2-not-for-printing";
const URL_WITH_PASSWORD = `postgres://keyhole:${PASSWORD}@127.0.0.1:9/keyhole`;
const dir = mkdtempSync(join(tmpdir(), "keyhole-migrate-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("--help and -h print the usage: options, the environment, and what is not copied", async () => {
  for (const flag of ["--help", "-h"]) {
    const io = memoryIo();
    assert.equal(await runCli(["migrate", flag], io), 0);
    const out = io.out();
    assert.match(
      out,
      /^Usage: keyhole migrate --from sqlite:PATH \[--to URL\] \[--to-schema NAME\]/,
    );
    for (const option of ["--from sqlite:PATH", "--to URL", "--to-schema NAME", "-h, --help"]) {
      assert.ok(out.includes(`  ${option}`), option);
    }
    assert.match(out, /Prefer KEYHOLE_DATABASE_URL: a command line, and the\s+password in it/);
    assert.match(out, /DIR\/pepper .*--pepper-file/s);
    assert.match(out, /DIR\/audit-key .*--audit-key-file/s);
    assert.match(out, /DIR\/revoked-tokens\s+nothing to carry/);
    assert.equal(io.err(), "");
  }
  const top = memoryIo();
  assert.equal(await runCli(["--help"], top), 0);
  assert.match(top.out(), /\n {2}migrate {3}copy a stopped server's vault to PostgreSQL/);
  assert.match(top.out(), /KEYHOLE_DATABASE_URL/);
});

const USAGE_ERRORS: [string[], Record<string, string>, RegExp][] = [
  [[], {}, /missing --from sqlite:PATH/],
  [["--from", "./keyhole.db", "--to", URL_WITH_PASSWORD], {}, /--from must be sqlite:PATH/],
  [["--from", "sqlite:", "--to", URL_WITH_PASSWORD], {}, /--from sqlite: needs a PATH/],
  [["--from", "sqlite://db/keyhole.db", "--to", URL_WITH_PASSWORD], {}, /not a URL/],
  [["--from", "sqlite:x"], {}, /missing --to URL \(or KEYHOLE_DATABASE_URL, preferred\)/],
  [["--from", "sqlite:x"], { KEYHOLE_DATABASE_URL: "" }, /missing --to URL/],
  [
    ["--from", "sqlite:x", "--to", `mysql://root:${PASSWORD}@db/x`],
    {},
    /^keyhole: --to must be a postgres:\/\/ or postgresql:\/\/ URL\n$/,
  ],
  [
    ["--from", "sqlite:x"],
    { KEYHOLE_DATABASE_URL: `http://u:${PASSWORD}@db/x` },
    /^keyhole: KEYHOLE_DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL\n$/,
  ],
  [
    ["--from", "sqlite:x", "--to", `postgres://u:${PASSWORD}@db/x\n--evil`],
    {},
    /--to contains spaces or control characters/,
  ],
  [
    ["--from", "sqlite:x", "--to-schema", "Vault"],
    { KEYHOLE_DATABASE_URL: URL_WITH_PASSWORD },
    /invalid --to-schema 'Vault'/,
  ],
  [
    ["--from", "sqlite:x", "--to-schema", "a;drop"],
    { KEYHOLE_DATABASE_URL: URL_WITH_PASSWORD },
    /invalid --to-schema/,
  ],
  [
    ["--from", "sqlite:x", "extra"],
    { KEYHOLE_DATABASE_URL: URL_WITH_PASSWORD },
    /unexpected argument 'extra'/,
  ],
  [
    ["--from", "sqlite:x", "--to", URL_WITH_PASSWORD, "--to", URL_WITH_PASSWORD],
    {},
    /option '--to' given more than once/,
  ],
  [["--from", "sqlite:x", "--url", "y"], {}, /unknown option '--url'/],
];

test("bad arguments are one-line usage errors (exit 2) that never echo the URL", async () => {
  for (const [args, env, message] of USAGE_ERRORS) {
    const io = memoryIo({ env, cwd: dir });
    assert.equal(await runCli(["migrate", ...args], io), 2, args.join(" "));
    assert.match(io.err(), message, args.join(" "));
    assert.equal(io.err().split("\n").length, 2, "one line");
    assert.ok(!io.err().includes(PASSWORD), "the password is never printed");
    assert.equal(io.out(), "");
  }
});

test("a missing source fails before any connection, without printing the URL", async () => {
  const io = memoryIo({ env: { KEYHOLE_DATABASE_URL: URL_WITH_PASSWORD }, cwd: dir });
  assert.equal(await runCli(["migrate", "--from", "sqlite:nowhere/keyhole.db"], io), 1);
  assert.match(io.err(), /nowhere\/keyhole\.db does not exist or cannot be read\n$/);
  assert.ok(!`${io.err()}${io.out()}`.includes(PASSWORD));
});

test("a URL parameter that would override the server's settings is refused first", async () => {
  const url = `${URL_WITH_PASSWORD}?search_path=elsewhere`;
  const io = memoryIo({ env: { KEYHOLE_DATABASE_URL: url }, cwd: dir });
  assert.equal(await runCli(["migrate", "--from", "sqlite:nowhere/keyhole.db"], io), 1);
  assert.match(io.err(), /parameter "search_path" is not supported/);
  assert.ok(!`${io.err()}${io.out()}`.includes(PASSWORD));
});

test("the summary names the target by scheme, host, port and database only", () => {
  assert.equal(
    describeTarget(`${URL_WITH_PASSWORD}?sslmode=require&password=${PASSWORD}`, undefined),
    "postgres://127.0.0.1:9/keyhole",
  );
  assert.equal(
    describeTarget(`postgresql://u:${PASSWORD}@db.internal/vault`, "keyhole"),
    "postgresql://db.internal/vault (schema keyhole)",
  );
  assert.equal(
    describeTarget(`postgres://u:${PASSWORD}@h1:5432,h2:5432/db`, undefined),
    "PostgreSQL",
  );
});
