#!/usr/bin/env node
// Throwaway PostgreSQL 15 server for tests and CI, with no dependencies beyond node: builtins.
//
//   import { startPostgres } from "./pg-server.mjs";
//   const pg = await startPostgres(); // { url, port, dataDir, pause, resume, stop }
//   ...
//   await pg.pause("immediate"); // the server is down (a crash), its data kept
//   await pg.resume(); // up again on the same port and URL
//   await pg.stop();
//
//   node scripts/pg-server.mjs start     # prints KEYHOLE_TEST_DATABASE_URL=... and KEYHOLE_TEST_PG_DIR=...
//   node scripts/pg-server.mjs stop DIR
//
// The whole cluster lives in one private temp directory (data, log and Unix socket), so it never
// touches a system PostgreSQL and removing that directory removes every trace of it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  appendFileSync,
  chownSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const DEFAULT_BIN_DIR = "/usr/lib/postgresql/15/bin";
const DIR_PREFIX = "keyhole-pg-";
const LOG_FILE = "postgres.log";
const SUPERUSER = "postgres";
const ROLE = "keyhole";
const DATABASE = "keyhole";
const REQUIRED_BINARIES = ["initdb", "pg_ctl", "postgres", "psql"];
const PORT_ATTEMPTS = 5;

/** An expected failure: the CLI prints its message on one line, without a stack. */
export class PgServerError extends Error {
  name = "PgServerError";
}

/**
 * Start a fresh PostgreSQL 15 cluster listening on 127.0.0.1 only.
 *
 * @param {object} [options]
 * @param {string} [options.binDir] PostgreSQL bin directory (env KEYHOLE_PG_BIN, else Debian's).
 * @param {string} [options.user] non-root user to run the server as when we are root
 *   (env KEYHOLE_PG_USER, else "postgres").
 * @param {Record<string, string | number | boolean>} [options.settings] extra postgresql.conf GUCs.
 * @param {boolean} [options.cleanupOnExit] kill the server and remove its directory when this
 *   process exits (default true; the CLI turns it off so the server outlives it).
 * @returns {Promise<{
 *   url: string,
 *   port: number,
 *   dataDir: string,
 *   pause: (mode?: "smart" | "fast" | "immediate") => Promise<void>,
 *   resume: () => Promise<void>,
 *   stop: () => Promise<void>,
 * }>}
 *   `pause` stops the server and keeps its data (`pg_ctl stop -m MODE`: "fast", the default,
 *   aborts transactions and disconnects clients cleanly; "immediate" kills every process
 *   without a checkpoint, like a crash, so `resume` runs crash recovery); `resume` starts it
 *   again on the same port, so the URL stays valid. Tests use them to restart the database
 *   under running servers.
 */
export async function startPostgres(options = {}) {
  const binDir = options.binDir ?? process.env.KEYHOLE_PG_BIN ?? DEFAULT_BIN_DIR;
  await ensureBinaries(binDir);
  const runAs = await resolveRunAs(options.user ?? process.env.KEYHOLE_PG_USER ?? SUPERUSER);
  const dataDir = await makeDataDir(runAs);
  if (options.cleanupOnExit !== false) liveDirs.add(dataDir);
  try {
    await initCluster(binDir, dataDir, runAs, options.settings ?? {});
    const port = await startServer(binDir, dataDir, runAs);
    const password = randomBytes(18).toString("base64url");
    await bootstrapRole(binDir, dataDir, runAs, port, password);
    const url = `postgres://${ROLE}:${password}@127.0.0.1:${port}/${DATABASE}`;
    let stopping;
    const stop = () => {
      stopping ??= stopCluster(binDir, dataDir, runAs);
      return stopping;
    };
    const pause = async (mode = "fast") => {
      if (!["smart", "fast", "immediate"].includes(mode)) {
        throw new PgServerError(`unknown shutdown mode ${mode}`);
      }
      const result = await run(
        join(binDir, "pg_ctl"),
        ["stop", "-D", dataDir, "-m", mode, "-w", "-t", "30"],
        { runAs, cwd: dataDir },
      );
      if (result.code !== 0) throw new PgServerError(`pg_ctl stop failed: ${tail(result.all)}`);
    };
    // Same port, no retry on another: the URL the clients hold must keep working. Something
    // else taking the port in between fails here, loudly, rather than moving the server.
    const resume = () => startServer(binDir, dataDir, runAs, port).then(() => {});
    return { url, port, dataDir, pause, resume, stop };
  } catch (error) {
    await stopCluster(binDir, dataDir, runAs); // the error already carries the log's tail
    throw error;
  }
}

/** Stop a cluster started by `startPostgres` (or the CLI) and remove its directory. */
export async function stopPostgres(dir, options = {}) {
  const dataDir = resolve(dir);
  if (!existsSync(dataDir)) return; // already stopped: stopping is idempotent
  // We are about to delete the directory recursively, so insist that it is one of ours.
  const ours =
    basename(dataDir).startsWith(DIR_PREFIX) &&
    statSync(dataDir).isDirectory() &&
    (existsSync(join(dataDir, "PG_VERSION")) || readdirSync(dataDir).length === 0);
  if (!ours) throw new PgServerError(`${dataDir} is not a directory made by pg-server.mjs`);
  const binDir = options.binDir ?? process.env.KEYHOLE_PG_BIN ?? DEFAULT_BIN_DIR;
  await stopCluster(binDir, dataDir, ownerOf(dataDir));
}

// ---------------------------------------------------------------------------------------------
// Binaries

async function ensureBinaries(binDir) {
  if (missingBinary(binDir) === undefined) return;
  if (process.env.CI === "true" && binDir === DEFAULT_BIN_DIR) await installWithApt();
  const missing = missingBinary(binDir);
  if (missing === undefined) return;
  throw new PgServerError(
    `PostgreSQL 15 not found: ${missing} is missing; install it with ` +
      "`sudo apt-get install postgresql-15` (or set KEYHOLE_PG_BIN to its bin directory)",
  );
}

function missingBinary(binDir) {
  for (const name of REQUIRED_BINARIES) {
    const path = join(binDir, name);
    try {
      accessSync(path, constants.X_OK);
    } catch {
      return path;
    }
  }
  return undefined;
}

// Only in CI: a developer's machine is theirs to install packages on, a clean CI runner is not.
async function installWithApt() {
  process.stderr.write("pg-server: PostgreSQL 15 is missing; installing it with apt-get (CI)\n");
  // sudo resets the environment, so pass DEBIAN_FRONTEND through env(1) to avoid prompts.
  const asRoot = process.getuid?.() === 0 ? ["env"] : ["sudo", "-n", "env"];
  const apt = (...args) =>
    run(asRoot[0], [...asRoot.slice(1), "DEBIAN_FRONTEND=noninteractive", "apt-get", ...args], {
      stdio: ["ignore", 2, 2], // progress goes to the CI log, never to our stdout
    });
  if ((await apt("update")).code !== 0) throw new PgServerError("apt-get update failed");
  // postgresql-15 pins the major version; the unversioned package is 15 only on Debian 12.
  const install = (name) => apt("install", "-y", "--no-install-recommends", name);
  if ((await install("postgresql-15")).code === 0) return;
  if ((await install("postgresql")).code === 0) return;
  throw new PgServerError("apt-get install postgresql-15 (and postgresql) failed");
}

// ---------------------------------------------------------------------------------------------
// Users and directories

// PostgreSQL refuses to run as root, so as root every server binary runs as another user; we
// switch with spawn's uid/gid (like setpriv) rather than runuser, which needs a name and PAM.
async function resolveRunAs(user) {
  if (process.getuid?.() !== 0) return undefined;
  const uid = await idOf(user, "-u");
  const gid = await idOf(user, "-g");
  if (uid === undefined || gid === undefined) {
    throw new PgServerError(
      `no "${user}" user to run PostgreSQL as (it refuses to run as root); install ` +
        "postgresql-15, which creates it, or set KEYHOLE_PG_USER to an existing non-root user",
    );
  }
  if (uid === 0) throw new PgServerError(`KEYHOLE_PG_USER "${user}" is root; pick a non-root user`);
  return { uid, gid };
}

async function idOf(user, flag) {
  const result = await run("id", [flag, user]);
  const id = Number.parseInt(result.stdout, 10);
  return result.code === 0 && Number.isInteger(id) ? id : undefined;
}

function ownerOf(dir) {
  if (process.getuid?.() !== 0) return undefined;
  const { uid, gid } = statSync(dir);
  return uid === 0 ? undefined : { uid, gid };
}

async function makeDataDir(runAs) {
  // mkdtemp makes the directory 0700, which keeps the trust-authenticated socket inside private.
  const dataDir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  if (runAs === undefined) return dataDir;
  chownSync(dataDir, runAs.uid, runAs.gid);
  // A private TMPDIR (say /root/tmp) would hide the directory from the server's user.
  if ((await run("test", ["-w", dataDir], { runAs })).code !== 0) {
    rmSync(dataDir, { recursive: true, force: true });
    throw new PgServerError(
      `the server's user cannot reach ${dataDir}; set TMPDIR to a world-traversable directory ` +
        "such as /tmp",
    );
  }
  return dataDir;
}

// ---------------------------------------------------------------------------------------------
// Cluster lifecycle

async function initCluster(binDir, dataDir, runAs, extraSettings) {
  const result = await run(
    join(binDir, "initdb"),
    [
      ["-D", dataDir],
      ["-U", SUPERUSER],
      ["--encoding=UTF8", "--locale=C"], // byte-order collation: same results on every machine
      ["--auth-local=trust", "--auth-host=scram-sha-256"],
      // Skipping initdb's final fsync saves seconds; a crash loses only a throwaway cluster.
      // The server itself keeps fsync and the other durability defaults.
      ["--no-sync", "--no-instructions"],
    ].flat(),
    { runAs, cwd: dataDir },
  );
  if (result.code !== 0) {
    throw new PgServerError(`initdb failed (exit ${result.code}): ${tail(result.all)}`);
  }
  const settings = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: dataDir,
    password_encryption: "scram-sha-256",
    shared_buffers: "32MB",
    max_connections: 200,
    ...extraSettings,
  };
  appendFileSync(join(dataDir, "postgresql.conf"), `\n# pg-server.mjs\n${toConf(settings)}`);
  // Replace initdb's pg_hba.conf, which also trusts every local user and allows ::1 and
  // replication: here only the bootstrap superuser uses the private socket, and everything
  // else must come over IPv4 loopback with a password.
  writeFileSync(
    join(dataDir, "pg_hba.conf"),
    `local all ${SUPERUSER} trust\nhost all all 127.0.0.1/32 scram-sha-256\n`,
  );
}

function toConf(settings) {
  const quote = (value) =>
    typeof value === "number" ? String(value) : `'${String(value).replaceAll("'", "''")}'`;
  return Object.entries(settings)
    .map(([name, value]) => `${name} = ${quote(value)}\n`)
    .join("");
}

// The free port we probe can be taken before postgres binds it, so retry on bind failures;
// a `fixedPort` (a restart) is tried once.
async function startServer(binDir, dataDir, runAs, fixedPort) {
  const logPath = join(dataDir, LOG_FILE);
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    const logStart = existsSync(logPath) ? statSync(logPath).size : 0;
    const result = await run(
      join(binDir, "pg_ctl"),
      ["start", "-D", dataDir, "-l", logPath, "-w", "-t", "60", "-o", `-p ${port}`],
      { runAs, cwd: dataDir },
    );
    if (result.code === 0) return port;
    const log = existsSync(logPath) ? readFileSync(logPath, "utf8").slice(logStart) : "";
    const bindFailed = /could not bind|address already in use|could not create any TCP/i.test(log);
    if (!bindFailed || fixedPort !== undefined || attempt >= PORT_ATTEMPTS) {
      throw new PgServerError(`postgres failed to start: ${tail(log || result.all)}`);
    }
  }
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

// Over the private socket as the superuser; the SQL goes through stdin so the password never
// shows up in a process listing.
async function bootstrapRole(binDir, dataDir, runAs, port, password) {
  const sql = [
    `CREATE ROLE ${ROLE} LOGIN CREATEDB PASSWORD '${password}';`,
    `CREATE DATABASE ${DATABASE} OWNER ${ROLE};`,
  ].join("\n");
  const result = await run(
    join(binDir, "psql"),
    ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dataDir, "-p", String(port)],
    { runAs, cwd: dataDir, input: sql, env: { PGUSER: SUPERUSER, PGDATABASE: "postgres" } },
  );
  if (result.code !== 0) {
    throw new PgServerError(`creating role ${ROLE} failed: ${tail(result.all)}`);
  }
}

async function stopCluster(binDir, dataDir, runAs) {
  if (existsSync(join(dataDir, "postmaster.pid"))) {
    const result = await run(
      join(binDir, "pg_ctl"),
      ["stop", "-D", dataDir, "-m", "fast", "-w", "-t", "30"],
      { runAs, cwd: dataDir },
    ).catch(() => ({ code: -1 }));
    if (result.code !== 0) killPostmasterSync(dataDir);
  }
  await rm(dataDir, { recursive: true, force: true });
  liveDirs.delete(dataDir);
}

// ---------------------------------------------------------------------------------------------
// Cleanup when the process exits without calling stop(): 'exit' handlers must be synchronous.

const liveDirs = new Set();
process.on("exit", () => {
  for (const dataDir of liveDirs) {
    killPostmasterSync(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

function killPostmasterSync(dataDir) {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return;
  try {
    process.kill(pid, "SIGQUIT"); // immediate shutdown: the postmaster takes its children along
  } catch {
    return; // already gone
  }
  // Wait (up to 5 s) for it to exit so the directory is not removed under a live server.
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < 5000 && isAlive(pid); waited += 20) {
    Atomics.wait(sleeper, 0, 0, 20);
  }
}

// The pid file names the data directory on its second line; checking it guards against a
// stale file whose pid now belongs to an unrelated process.
function postmasterPid(dataDir) {
  try {
    const [pid, dir] = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
    const parsed = Number.parseInt(pid, 10);
    return dir === dataDir && parsed > 0 ? parsed : undefined;
  } catch {
    return undefined;
  }
}

// A postmaster that has exited stays a zombie until init reaps it, and kill(pid, 0) still
// succeeds on zombies, so look at its state in /proc when there is one.
function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return error.code === "EPERM";
  }
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return !existsSync("/proc/self"); // no /proc: trust kill(); gone from /proc: exited
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

// Variables such as PGHOST, PGPORT or PGPASSWORD in the caller's environment would redirect or
// confuse the tools, and LC_ALL=C keeps their messages (which we match on) in English.
function cleanEnv(extra = {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("PG")),
  );
  return { ...env, LC_ALL: "C", ...extra };
}

/**
 * Run a command and collect its output; resolves with the exit code rather than rejecting, and
 * turns a missing or unexecutable binary into a PgServerError.
 */
function run(command, args, { runAs, cwd, input, env, stdio } = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: cleanEnv({ ...(runAs ? { HOME: cwd ?? "/" } : {}), ...env }),
      stdio: stdio ?? [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      ...(runAs ?? {}),
    });
    let stdout = "";
    let all = "";
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
      all += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      all += chunk;
    });
    child.on("error", (error) => {
      reject(new PgServerError(`cannot run ${command}: ${error.code ?? error.message}`));
    });
    child.on("close", (code) => resolveRun({ code: code ?? -1, stdout, all }));
    // A child that exits before reading its input must not crash us with EPIPE.
    child.stdin?.on("error", () => {});
    child.stdin?.end(input);
  });
}

function tail(text, lines = 5) {
  const kept = text.trim().split("\n").filter(Boolean).slice(-lines);
  return kept.length > 0 ? kept.join(" | ") : "(no output)";
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = `usage:
  node scripts/pg-server.mjs start      start a throwaway PostgreSQL 15 server and print
                                        KEYHOLE_TEST_DATABASE_URL=... and KEYHOLE_TEST_PG_DIR=...
  node scripts/pg-server.mjs stop DIR   stop that server and remove DIR

environment:
  KEYHOLE_PG_BIN    PostgreSQL bin directory (default ${DEFAULT_BIN_DIR})
  KEYHOLE_PG_USER   user that runs the server when we are root (default postgres)
  CI=true           install postgresql-15 with apt-get when it is missing
`;

async function main(args) {
  const [command, ...rest] = args;
  if (command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE);
  } else if (command === "start" && rest.length === 0) {
    const { url, dataDir } = await startPostgres({ cleanupOnExit: false });
    process.stdout.write(`KEYHOLE_TEST_DATABASE_URL=${url}\nKEYHOLE_TEST_PG_DIR=${dataDir}\n`);
  } else if (command === "stop" && rest.length === 1) {
    await stopPostgres(rest[0]);
  } else {
    process.stderr.write(USAGE);
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error) => {
    process.stderr.write(
      `pg-server: ${error instanceof PgServerError ? error.message : error.stack}\n`,
    );
    process.exitCode = 1;
  });
}
