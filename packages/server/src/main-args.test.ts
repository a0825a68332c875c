// The bare `keyhole-server` entry refuses a repeated option, as the CLI does: Node's parseArgs
// keeps the last one silently, so `--trusted-proxy A --trusted-proxy B` would trust only B.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runWithoutPostgres } from "./test-support/no-postgres.js";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "keyhole-main-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("a repeated option is a usage error (exit 2) naming it, and nothing is started", () => {
  const dataDir = join(root, "data");
  for (const [name, ...args] of [
    ["--trusted-proxy", "--trusted-proxy", "10.0.0.1", "--trusted-proxy", "10.0.0.2"],
    ["--port", "--port", "0", "--port=0"],
    ["--data-dir", "--data-dir", join(root, "other")],
  ]) {
    const run = spawnSync(process.execPath, [MAIN, "--data-dir", dataDir, ...args], {
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(run.status, 2, `${args.join(" ")}: ${run.stderr}`);
    const first = run.stderr.split("\n")[0] ?? "";
    assert.equal(first, `keyhole server: option '${name}' given more than once`);
    assert.ok(!existsSync(dataDir), "no data directory was created");
  }
});

// The database options (issue 6): the URL (better from KEYHOLE_DATABASE_URL: argv is readable by
// every local user) is checked before anything starts, and never repeated in any line.
const PASSWORD = "hunter2-not-for-logs";
const UNREACHABLE = `postgres://keyhole:${PASSWORD}@127.0.0.1:9/keyhole`;

function runMain(args: string[], env: Record<string, string> = {}) {
  // Only what the test sets: a developer's own KEYHOLE_* variables must not leak in.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^KEYHOLE_|^PG/.test(name)),
  );
  return spawnSync(process.execPath, [MAIN, ...args], {
    encoding: "utf8",
    timeout: 10_000,
    env: { ...inherited, ...env },
  });
}

function keyFile(name: string): string {
  const path = join(root, name);
  writeFileSync(path, randomBytes(32), { mode: 0o600 });
  return path;
}

test("--help documents the database options and prefers the environment for the URL", () => {
  const run = runMain(["--help"]);
  assert.equal(run.status, 0);
  for (const option of [
    "--database-url URL",
    "--database-schema NAME",
    "--pepper-file FILE",
    "--audit-key-file FILE",
    "KEYHOLE_DATABASE_URL",
    "KEYHOLE_PEPPER_FILE",
    "KEYHOLE_AUDIT_KEY_FILE",
  ]) {
    assert.ok(run.stdout.includes(option), option);
  }
});

test("bad database options are usage errors (exit 2) that never repeat the URL", () => {
  const dataDir = join(root, "db-usage");
  const pepper = keyFile("usage-pepper");
  for (const [args, env, message] of [
    [
      ["--database-url", `mysql://root:${PASSWORD}@db/x`],
      {},
      "--database-url (or KEYHOLE_DATABASE_URL) must start with postgres:// or postgresql://",
    ],
    [
      [],
      { KEYHOLE_DATABASE_URL: `postgre://root:${PASSWORD}@db/x` },
      "--database-url (or KEYHOLE_DATABASE_URL) must start with postgres:// or postgresql://",
    ],
    [
      ["--pepper-file", pepper],
      {},
      "--pepper-file and --audit-key-file (KEYHOLE_PEPPER_FILE, KEYHOLE_AUDIT_KEY_FILE) go " +
        "with --database-url only",
    ],
    [["--database-schema", "keyhole"], {}, "--database-schema needs --database-url"],
  ] as const) {
    const run = runMain(["--data-dir", dataDir, ...args], { ...env });
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stderr.split("\n")[0], `keyhole server: ${message}`);
    assert.ok(!run.stderr.includes(PASSWORD));
    assert.ok(!existsSync(dataDir), "no data directory was created");
  }
});

test("an unreachable database is one coded line naming host:port, never the password", () => {
  const pepper = keyFile("pepper");
  const auditKey = keyFile("audit-key");
  const expected =
    "keyhole server: unavailable: cannot reach the database at 127.0.0.1:9 (PG_ECONNREFUSED); " +
    "check that PostgreSQL runs there and accepts connections from this host\n";
  const quiet = runMain(["--data-dir", join(root, "db-env"), "--port", "0"], {
    KEYHOLE_DATABASE_URL: UNREACHABLE,
    KEYHOLE_PEPPER_FILE: pepper,
    KEYHOLE_AUDIT_KEY_FILE: auditKey,
  });
  assert.equal(quiet.status, 1, quiet.stderr);
  assert.equal(quiet.stderr, expected);
  const loud = runMain([
    "--data-dir",
    join(root, "db-argv"),
    "--port",
    "0",
    "--database-url",
    UNREACHABLE,
    "--pepper-file",
    pepper,
    "--audit-key-file",
    auditKey,
  ]);
  assert.equal(loud.status, 1, loud.stderr);
  const [warning, ...others] = loud.stderr.split("\n");
  assert.match(warning ?? "", /^keyhole server: warning: the password in --database-url can be/);
  assert.equal(others.join("\n"), expected);
  const missingKeys = runMain(["--data-dir", join(root, "db-nokeys"), "--port", "0"], {
    KEYHOLE_DATABASE_URL: UNREACHABLE,
  });
  assert.equal(missingKeys.status, 1);
  assert.match(
    missingKeys.stderr,
    /^keyhole server: config_error: with --database-url, every server sharing the database must use the same pepper and audit key.*--pepper-file and --audit-key-file/,
  );
  for (const run of [quiet, loud, missingKeys]) {
    assert.ok(!run.stderr.includes(PASSWORD) && !run.stdout.includes(PASSWORD));
    assert.ok(!run.stderr.includes("postgres://"), "the URL is never repeated");
  }
});

test("a SQLite server starts and stops without ever loading the PostgreSQL driver", () => {
  // Any import of `postgres` fails in the child: only a database URL may load it.
  const server = new URL("./server.js", import.meta.url).href;
  const run = runWithoutPostgres(
    `const { startServer } = await import(${JSON.stringify(server)});
    const running = await startServer({ dataDir: process.argv[1], port: 0, logLevel: "silent" });
    await running.close();
    console.log("sqlite only");`,
    [join(root, "sqlite-only")],
  );
  assert.equal(run.stdout.trim(), "sqlite only", run.stderr);
});
