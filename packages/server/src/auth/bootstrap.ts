/**
 * The bootstrap code: made at first start while the vault has no owner, written to
 * `DATA_DIR/bootstrap-code` (0600) and printed. The first `POST /v1/init` must present it; it is
 * compared in constant time (SHA-256 of both, then `timingSafeEqual`, so lengths leak nothing)
 * and deleted on success.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { rmSync } from "node:fs";

/** A new code: 128 random bits as 32 hex characters (safe to paste into any shell or flag). */
export function newBootstrapCode(): string {
  return randomBytes(16).toString("hex");
}

/** The code while the vault awaits its owner. */
export class BootstrapCode {
  #code: string | null;
  readonly #path: string;

  constructor(path: string, code: string | null) {
    this.#path = path;
    this.#code = code;
  }

  /** The code, or null once the vault is initialised. */
  get code(): string | null {
    return this.#code;
  }

  /** True when `presented` is the code. */
  matches(presented: string): boolean {
    if (this.#code === null) return false;
    const a = createHash("sha256").update(presented, "utf8").digest();
    const b = createHash("sha256").update(this.#code, "utf8").digest();
    return timingSafeEqual(a, b);
  }

  /** Forgets the code and deletes its file (after a successful init). */
  consume(): void {
    this.#code = null;
    rmSync(this.#path, { force: true });
  }
}
