// Runs one closed-loop load point in its own process (bench/load.mjs) and returns its result:
// the load generator never shares a CPU's event loop with the server or the benchmark script.
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const loadScript = fileURLToPath(new URL("./load.mjs", import.meta.url));

/** `{ url, headers, concurrency, durationMs, warmupMs }` → `{ rps, p50, p99, max, errors, sent }`. */
export function runLoad(spec) {
  // The spec goes on stdin: its headers hold credentials, and argv is readable by every user.
  const out = execFileSync(process.execPath, [loadScript], { input: JSON.stringify(spec) });
  return JSON.parse(out.toString());
}

/**
 * `runLoad` without blocking this process's event loop (it can sample meanwhile): the same spec
 * on stdin, the same result.
 */
export function runLoadAsync(spec) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [loadScript], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (code === 0) resolve(JSON.parse(out));
      else reject(new Error(`bench/load.mjs exited ${code ?? signal}`));
    });
    child.stdin.end(JSON.stringify(spec));
  });
}
