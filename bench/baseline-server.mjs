#!/usr/bin/env node
// "The machine's limit" for our stack: node:http + better-sqlite3 reading one row by key and
// returning it as JSON. No auth, no audit, no crypto. Prints `listening PORT` on stdout.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(new URL("../packages/server/package.json", import.meta.url));
const Database = require("better-sqlite3");
const dir = mkdtempSync(join(tmpdir(), "keyhole-baseline-"));
const db = new Database(join(dir, "baseline.db"));
db.pragma("journal_mode = WAL");
db.exec("CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)");
db.prepare("INSERT INTO secrets VALUES (?, ?)").run("demo", Buffer.alloc(300, 7));
const read = db.prepare("SELECT value FROM secrets WHERE name = ?");

const server = http.createServer((req, res) => {
  const row = read.get(req.url.slice(1));
  const body = JSON.stringify({ value: row ? row.value.toString("base64url") : null });
  res.writeHead(row ? 200 : 404, { "content-type": "application/json" });
  res.end(body);
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () =>
  server.close(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
