#!/usr/bin/env node
// For profiling only: the same broker `keyhole broker` runs (the same modules from
// packages/cli/dist, the SDK's Vault, the same per-call path), started in this process so it can
// run under `node --cpu-prof`, which the real command refuses on purpose (a debugger flag could
// load code into a token holder). Used by `node bench/broker.mjs --profile`; not a product path.
// Prints what the command prints: `NAME=value` lines on stdout, `broker listening on URL` on stderr.
//
// Usage: node --cpu-prof bench/broker-profile.mjs TOKEN_FILE ADDR ROUTE_SPEC CACHE_TTL_MS LOG_FILE|-
import { createWriteStream } from "node:fs";
import { Vault } from "@keyhole/sdk";
import { CapabilityBook } from "../packages/cli/dist/broker/capability.js";
import { parseRouteSpec, routeEnv } from "../packages/cli/dist/broker/routes.js";
import { startBrokerService } from "../packages/cli/dist/broker/serve.js";
import { createVaultSecretSource } from "../packages/cli/dist/broker/vault-source.js";

const [tokenFile, addr, spec, cacheTtlMs, logFile] = process.argv.slice(2);
const route = parseRouteSpec(spec, { allowPlainHttpLoopbackUpstream: true });
const vault = new Vault({ tokenFile, addr });
const book = new CapabilityBook();
const source = createVaultSecretSource(vault, Number(cacheTtlMs));
// As the command: the call log to a file, or to stderr ("-").
const logStream =
  logFile === "-" ? process.stderr : createWriteStream(logFile, { flags: "a", mode: 0o600 });
const service = await startBrokerService({
  routes: [route],
  capabilities: book,
  source,
  listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
  log: (line) =>
    logStream.write(
      logStream === process.stderr ? `keyhole: ${line}\n` : `${new Date().toISOString()} ${line}\n`,
    ),
  allowPlainHttpLoopbackUpstream: true,
});
const env = routeEnv(route, service.url, book.issue(route.name));
process.stdout.write(
  Object.entries(env)
    .map(([name, value]) => `${name}=${value}\n`)
    .join(""),
);
process.stderr.write(`keyhole: broker listening on ${service.url} (profiling build)\n`);
const stop = async () => {
  await service.close();
  vault.close();
  if (logStream === process.stderr) process.exit(0);
  else logStream.end(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
