/**
 * @keyhole/server: the Keyhole HTTP server. It stores only ciphertext, public keys and HMACs,
 * authenticates agents and the owner, enforces grants, and keeps a hash-chained audit log.
 * This file is the package's public contract.
 */

export type { AuditChainResult, AuditChainStart, PinnedCheckResult } from "./audit/verify.js";
export { verifyAgainstCheckpoint, verifyAuditChain, verifyCheckpoint } from "./audit/verify.js";
export { backupDatabase, restoreDatabase } from "./backup.js";
export type { LogLevel } from "./log.js";
export type {
  MigrateOptions,
  MigrateProgress,
  MigrateSummary,
  MigrateTarget,
} from "./migrate/sqlite-to-postgres.js";
export { migrateSqliteToPostgres } from "./migrate/sqlite-to-postgres.js";
export type { RunningServer, ServerOptions } from "./server.js";
export { DEFAULT_PORT, startServer } from "./server.js";
export { SERVER_VERSION } from "./version.js";
