// `keyhole server`'s database options (issue 6): checked before anything starts, each readable
// from the environment, and no message, warning or error ever repeats the URL or its password.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCli } from "../cli.js";
import { memoryIo } from "../test-support/memory-io.js";

const root = mkdtempSync(join(tmpdir(), "keyhole-server-cmd-"));
after(() => rmSync(root, { recursive: true, force: true }));
const PASSWORD = "hunter2-not-for-logs";
// Nothing listens on port 9 (discard): the connection is refused at once.
const UNREACHABLE = `postgres://keyhole:${PASSWORD}@127.0.0.1:9/keyhole`;

function keyFile(name: string): string {
  const path = join(root, name);
  writeFileSync(path, randomBytes(32), { mode: 0o600 });
  return path;
}

async function server(args: string[], env: Record<string, string> = {}) {
  const dataDir = join(root, `data-${randomBytes(4).toString("hex")}`);
  const io = memoryIo({ env: { KEYHOLE_HOME: join(root, "home"), ...env }, cwd: root });
  const code = await runCli(["server", "--data-dir", dataDir, "--port", "0", ...args], io);
  return { code, out: io.out(), err: io.err(), dataDir };
}

test("--help documents every database option and why the environment is preferred", async () => {
  const io = memoryIo();
  assert.equal(await runCli(["server", "--help"], io), 0);
  const help = io.out();
  for (const option of [
    "--database-url URL",
    "--database-schema NAME",
    "--pepper-file FILE",
    "--audit-key-file FILE",
    "KEYHOLE_DATABASE_URL",
    "KEYHOLE_PEPPER_FILE",
    "KEYHOLE_AUDIT_KEY_FILE",
  ]) {
    assert.ok(help.includes(option), option);
  }
  assert.match(help, /any user of\s+this machine can read a command line \(ps\)/);
});

test("a URL of another scheme is a usage error (exit 2) that does not repeat it", async () => {
  for (const run of [
    await server(["--database-url", `mysql://root:${PASSWORD}@db/x`]),
    await server([], { KEYHOLE_DATABASE_URL: `http://root:${PASSWORD}@db/x` }),
    await server(["--database-url", ""]),
  ]) {
    assert.equal(run.code, 2, run.err);
    assert.equal(
      run.err,
      "keyhole: --database-url (or KEYHOLE_DATABASE_URL) must start with postgres:// or " +
        "postgresql://\n",
    );
    assert.ok(!existsSync(run.dataDir), "nothing was started");
  }
});

test("the key files and the schema are refused without a database URL", async () => {
  const pepper = keyFile("lone-pepper");
  for (const [args, env, pattern] of [
    [["--pepper-file", pepper], {}, /--pepper-file and --audit-key-file .* --database-url only/],
    [[], { KEYHOLE_AUDIT_KEY_FILE: pepper }, /--database-url only/],
    [["--database-schema", "keyhole"], {}, /--database-schema needs --database-url/],
  ] as const) {
    const run = await server([...args], { ...env });
    assert.equal(run.code, 2, run.err);
    assert.match(run.err, pattern);
    assert.ok(!existsSync(run.dataDir), "nothing was started");
  }
});

test("a database URL without the shared key files refuses to start, saying why", async () => {
  const run = await server([], { KEYHOLE_DATABASE_URL: UNREACHABLE });
  assert.equal(run.code, 1);
  assert.match(
    run.err,
    /^keyhole: with --database-url, every server sharing the database must use the same pepper/,
  );
  assert.match(run.err, /--pepper-file and --audit-key-file/);
  assert.equal(run.err.split("\n").length, 2, "one line");
  assert.ok(!run.err.includes(PASSWORD));
});

test("an unreachable database is one line naming host:port, never the password", async () => {
  const pepper = keyFile("pepper");
  const auditKey = keyFile("audit-key");
  // From the environment: no warning.
  const quiet = await server([], {
    KEYHOLE_DATABASE_URL: UNREACHABLE,
    KEYHOLE_PEPPER_FILE: pepper,
    KEYHOLE_AUDIT_KEY_FILE: auditKey,
  });
  assert.equal(quiet.code, 1, quiet.err);
  assert.equal(
    quiet.err,
    "keyhole: cannot reach the database at 127.0.0.1:9 (PG_ECONNREFUSED); check that " +
      "PostgreSQL runs there and accepts connections from this host\n",
  );
  // On the command line (relative key file paths, resolved against the working directory):
  // the same error, after a warning that other users can read the password there.
  const loud = await server([
    "--database-url",
    UNREACHABLE,
    "--pepper-file",
    "pepper",
    "--audit-key-file",
    "audit-key",
  ]);
  assert.equal(loud.code, 1, loud.err);
  const lines = loud.err.trimEnd().split("\n");
  assert.equal(lines.length, 2, loud.err);
  assert.match(lines[0] ?? "", /^warning: the password in --database-url can be read by other/);
  assert.equal(`${lines[1]}\n`, quiet.err);
  for (const run of [quiet, loud]) {
    assert.ok(!run.err.includes(PASSWORD) && !run.out.includes(PASSWORD));
    assert.ok(!run.err.includes("postgres://"), "the URL is never repeated");
  }
});
