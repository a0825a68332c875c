/**
 * Makes committed transactions durable without blocking the event loop.
 *
 * The connection runs with `synchronous=NORMAL`: a COMMIT appends its frames to the WAL file and
 * returns without an fsync (SQLite still syncs around every checkpoint, so the database is never
 * corrupted, but the last commits could be lost to a power cut). This class then fsyncs the WAL
 * file from libuv's thread pool, and nothing a commit wrote is answered or shown before that
 * sync has finished (group-commit.ts). So an answer still waits for its audit entry to be on
 * disk, as with `synchronous=FULL`, but the event loop serves other requests while the disk
 * works, and the next batch commits in the meantime.
 *
 * An fsync on Linux flushes the file (the inode), whichever descriptor it is called on, so our
 * own descriptor on `PATH-wal` covers SQLite's writes. SQLite deletes the WAL file only when the
 * last connection closes, after a full checkpoint; the inode is still checked before each sync,
 * and a new file is reopened (its predecessor's frames were checkpointed and synced by SQLite).
 */
import { closeSync, fdatasync, fstatSync, fsyncSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { SYNC_FAILED_CODE } from "./storage-errors.js";

/** Syncs the write-ahead log of the database at `dbPath`. */
export class WalSync {
  readonly #walPath: string;
  #fd: number | undefined;
  #inode = 0;

  constructor(dbPath: string) {
    this.#walPath = `${dbPath}-wal`;
  }

  /**
   * Resolves once everything written to the WAL so far is on disk; rejects on an I/O error with
   * the code SQLite itself gives a failed fsync, so it is answered as a storage fault.
   */
  sync(): Promise<void> {
    let fd: number;
    try {
      fd = this.#current();
    } catch (error) {
      return Promise.reject(syncFailed(error));
    }
    return new Promise((resolve, reject) => {
      fdatasync(fd, (error) => (error ? reject(syncFailed(error)) : resolve()));
    });
  }

  /** Closes the descriptor. Only after the last sync has settled. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** The descriptor of the WAL file that is there now (opened, or reopened if it was replaced). */
  #current(): number {
    const inode = statSync(this.#walPath).ino;
    if (this.#fd !== undefined && inode === this.#inode) return this.#fd;
    this.close();
    // Read-only is enough to fsync; never create it (SQLite owns the file and its mode).
    const fd = openSync(this.#walPath, "r");
    this.#fd = fd;
    this.#inode = fstatSync(fd).ino;
    // A new file's directory entry must be durable too, once.
    syncDirectory(dirname(this.#walPath));
    return fd;
  }
}

function syncFailed(cause: unknown): Error {
  return Object.assign(new Error("the write-ahead log could not be synced", { cause }), {
    code: SYNC_FAILED_CODE,
  });
}

function syncDirectory(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
