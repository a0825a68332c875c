// A `keyhole server` child for the benchmarks: 127.0.0.1, port 0, its own data directory.
// Resolves once it listens (and, on a fresh directory, once it has printed its bootstrap code).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../packages/cli/bin/keyhole.js", import.meta.url));

/**
 * Starts the server with `env` on `dataDir`. `fresh`: wait for the bootstrap code too.
 * Resolves `{ child, exited, addr, code }`; rejects if it exits first.
 */
export function startKeyholeServer({ env, dataDir, fresh = true, extraArgs = [] }) {
  const args = [bin, "server", "--data-dir", dataDir, "--port", "0", "--log-level", "error"];
  const child = spawn(process.execPath, [...args, ...extraArgs], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  let seen = "";
  return new Promise((resolve, reject) => {
    const onData = (chunk) => {
      seen += chunk;
      const addr = seen.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      const code = seen.match(/bootstrap code: (\S+)/);
      if (addr && (!fresh || code)) resolve({ child, exited, addr: addr[1], code: code?.[1] });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (status) => reject(new Error(`server exited ${status}: ${seen}`)));
  });
}
