/**
 * The revoked-token deny list: `DATA_DIR/revoked-tokens`, kept outside the database like the
 * pepper, so that restoring an older `keyhole.db` cannot bring a revoked or rotated-out token
 * back (DESIGN §4, SECURITY-TESTS #15). One lower-case hex token id per line, append-only, each
 * append fsynced, mode 0600.
 *
 * Ordering: a revoke or rotate first records the retired token id in the database
 * (`retired_tokens`), in the same transaction that kills the token; after the commit the id is
 * appended here. At start-up every retired id in the database missing from the file is appended
 * (a crash between the commit and the append), then the whole file is held in memory and agent
 * authentication refuses any id in it. A line that is not a token id stops the server from
 * starting: silently skipping it could drop a revocation. So does a missing file once the vault
 * has an owner (`ifMissing: "refuse"`): re-creating it from an older database would silently
 * forget every revocation made after that copy; the server re-creates it only when told to
 * (`allowMissingRevocations`, server.ts).
 */
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { KeyholeError } from "@keyhole/core";
import { assertPrivateFile, currentOwner, openNoFollow, syncDirectory } from "../data-dir.js";
import type { Store } from "../store/store.js";

/** 16-byte token ids, as written in the file. */
const LINE = /^[0-9a-f]{32}$/;

function hex(tokenId: Uint8Array): string {
  return Buffer.from(tokenId.buffer, tokenId.byteOffset, tokenId.byteLength).toString("hex");
}

/** The deny list, loaded in memory, with appends going to the file. */
export class RevokedTokens {
  readonly #path: string;
  readonly #ids: Set<string>;
  /** Ids recorded in memory whose append has not succeeded yet (retried on the next one). */
  #pending: string[] = [];
  /** The file does not end with a newline (edited by hand): the next append starts one. */
  #needsNewline: boolean;
  /** True when `open` found no file and created it empty. */
  readonly created: boolean;

  private constructor(path: string, ids: Set<string>, needsNewline: boolean, created: boolean) {
    this.#path = path;
    this.#ids = ids;
    this.#needsNewline = needsNewline;
    this.created = created;
  }

  /**
   * Opens the file, creating it empty (0600) when missing, unless `ifMissing` is `"refuse"`:
   * then a missing file is a `config_error` (the vault has an owner, so the file existed).
   * `config_error` too if it is a symbolic link or not a regular file, is not owned by `owner`
   * (the server's user; data-dir.ts), is readable by group or others, or holds a line that is
   * not a token id.
   */
  static open(
    path: string,
    owner = currentOwner(),
    ifMissing: "create" | "refuse" = "create",
  ): RevokedTokens {
    let fd: number;
    let created = false;
    try {
      fd = openNoFollow(path, constants.O_RDONLY);
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") throw error;
      if (ifMissing === "refuse") throw missing(path);
      fd = openSync(path, "wx+", 0o600);
      created = true;
    }
    let text: string;
    try {
      assertPrivateFile(path, fstatSync(fd), owner);
      if (created) fsyncSync(fd);
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
    if (created) syncDirectory(dirname(path));
    const ids = new Set<string>();
    const lines = text.split("\n");
    // After the last newline: "" normally, else a final line without one.
    const last = lines.pop() ?? "";
    lines.forEach((line, i) => {
      if (line === "") return;
      if (!LINE.test(line)) throw garbled(path, i + 1);
      ids.add(line);
    });
    if (last !== "") {
      if (!LINE.test(last)) throw garbled(path, lines.length + 1);
      ids.add(last);
    }
    return new RevokedTokens(path, ids, last !== "", created);
  }

  /** How many token ids the list holds. */
  get size(): number {
    return this.#ids.size;
  }

  /** True when `tokenId` was revoked or rotated out. */
  has(tokenId: Uint8Array): boolean {
    return this.#ids.has(hex(tokenId));
  }

  /** Every token id on the list. */
  *tokenIds(): Iterable<Uint8Array> {
    for (const id of this.#ids) yield new Uint8Array(Buffer.from(id, "hex"));
  }

  /**
   * Adds token ids: refused in memory at once, then appended to the file and fsynced, together
   * with any earlier ids whose append failed. Throws when the append fails; the ids then stay
   * refused in memory, the database still records them, and the next append or start-up
   * writes them.
   */
  record(tokenIds: readonly Uint8Array[]): void {
    for (const tokenId of tokenIds) {
      const id = hex(tokenId);
      if (!LINE.test(id)) throw new Error("a token id is 16 bytes");
      if (this.#ids.has(id)) continue;
      this.#ids.add(id);
      this.#pending.push(id);
    }
    this.#flush();
  }

  /**
   * Start-up reconciliation: appends every retired token id the database records that the file
   * lacks (a crash between a revoke's commit and its append). Returns how many were added.
   */
  async reconcile(store: Pick<Store, "listRetiredTokenIds">): Promise<number> {
    const missing = (await store.listRetiredTokenIds()).filter((id) => !this.has(id));
    this.record(missing);
    return missing.length;
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const text = `${this.#needsNewline ? "\n" : ""}${this.#pending.map((id) => `${id}\n`).join("")}`;
    const data = Buffer.from(text, "ascii");
    const fd = openNoFollow(this.#path, constants.O_WRONLY | constants.O_APPEND);
    try {
      const size = fstatSync(fd).size;
      try {
        let written = 0;
        while (written < data.length) written += writeSync(fd, data, written);
        fsyncSync(fd);
      } catch (error) {
        // Leave no half-written line behind: it would stop the next start-up.
        try {
          ftruncateSync(fd, size);
        } catch {
          // Nothing more to do; the next start-up names the damaged line.
        }
        throw error;
      }
    } finally {
      closeSync(fd);
    }
    this.#pending = [];
    this.#needsNewline = false;
  }
}

function missing(path: string): KeyholeError {
  return new KeyholeError(
    "config_error",
    `${path} is missing but the vault is initialised; refusing to start, since re-creating it ` +
      "from the database would forget every revocation made after the database's last backup. " +
      "Put back this server's own revoked-tokens file (never an older copy). If it is truly " +
      "lost, start once with --allow-missing-revocations (ServerOptions.allowMissingRevocations) " +
      "to re-create it from the ids the database records, then revoke or rotate every agent " +
      "that may have been revoked or rotated since that backup",
  );
}

function garbled(path: string, line: number): KeyholeError {
  return new KeyholeError(
    "config_error",
    `${path} line ${line} is not a token id (32 lower-case hex characters); refusing to start ` +
      "rather than forget a revocation. Repair the line; ids the database still records are " +
      "re-added at start-up",
  );
}
