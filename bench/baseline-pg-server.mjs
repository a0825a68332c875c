#!/usr/bin/env node
// The PostgreSQL twin of baseline-server.mjs: node:http + the `postgres` driver Keyhole's store
// uses (same pool size, prepared statements), reading one row by key from PostgreSQL and
// returning it as JSON. No auth, no audit, no crypto, no transaction: one round trip per request.
// The database URL comes in BENCH_DATABASE_URL (the environment, not argv: it holds a password);
// the table lives in schema `bench_baseline`, created here. Prints `listening PORT` on stdout.
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(new URL("../packages/server/package.json", import.meta.url));
const postgres = require("postgres");

const url = process.env.BENCH_DATABASE_URL;
if (!url) {
  process.stderr.write("BENCH_DATABASE_URL is not set\n");
  process.exit(2);
}
// As the store opens its pool (packages/server/src/store/postgres-db.ts): 10 connections.
const sql = postgres(url, { max: 10, idle_timeout: 60, connect_timeout: 5, onnotice: () => {} });
await sql`CREATE SCHEMA IF NOT EXISTS bench_baseline`;
await sql`CREATE TABLE IF NOT EXISTS bench_baseline.secrets (
  name TEXT PRIMARY KEY, value BYTEA NOT NULL)`;
await sql`INSERT INTO bench_baseline.secrets VALUES ('demo', ${Buffer.alloc(300, 7)})
  ON CONFLICT (name) DO NOTHING`;

const server = http.createServer(async (req, res) => {
  try {
    const [row] =
      await sql`SELECT value FROM bench_baseline.secrets WHERE name = ${req.url.slice(1)}`;
    const body = JSON.stringify({ value: row ? row.value.toString("base64url") : null });
    res.writeHead(row ? 200 : 404, { "content-type": "application/json" });
    res.end(body);
  } catch {
    res.writeHead(500).end();
  }
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () =>
  server.close(async () => {
    await sql.end({ timeout: 1 });
    process.exit(0);
  });
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
