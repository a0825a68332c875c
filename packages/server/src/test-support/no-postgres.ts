// Runs a module script in a child Node whose `import "postgres"` fails with
// "postgres-was-loaded": for the tests that prove a SQLite server, and the package's entry
// point, never load the PostgreSQL driver (only a database URL may).
import { type SpawnSyncReturns, spawnSync } from "node:child_process";

const HOOK = `export async function resolve(specifier, context, next) {
  if (specifier === "postgres") throw new Error("postgres-was-loaded");
  return next(specifier, context);
}`;

/** Runs `body` (an ES module's text) with the hook registered first; `args` follow it. */
export function runWithoutPostgres(
  body: string,
  args: readonly string[] = [],
  options: { cwd?: string; timeoutMs?: number } = {},
): SpawnSyncReturns<string> {
  const script = `
    import { register } from "node:module";
    register("data:text/javascript," + encodeURIComponent(${JSON.stringify(HOOK)}));
    ${body}`;
  return spawnSync(process.execPath, ["--input-type=module", "-e", script, ...args], {
    encoding: "utf8",
    timeout: options.timeoutMs ?? 10_000,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
}
