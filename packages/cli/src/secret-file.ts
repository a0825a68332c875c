/**
 * Writing a secret (an agent token) to a file: mode 0600 from the first byte, created or
 * overwritten atomically. The content goes to a temporary file in the same directory, which is
 * renamed over the target only when the caller commits, so a failed `agent create` leaves no
 * token behind and a reader never sees half a token.
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { KeyholeError } from "@keyhole/core";

/** A prepared file: `commit` puts it in place, `abort` removes it. */
export interface PendingSecretFile {
  readonly path: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : "error";
}

/** Writes `content` to a 0600 temporary file next to `path`. */
export async function prepareSecretFile(path: string, content: string): Promise<PendingSecretFile> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await rm(temporary, { force: true });
    throw new KeyholeError("config_error", `cannot write ${path} (${describe(error)})`);
  }
  return {
    path,
    commit: async () => {
      try {
        await rename(temporary, path);
      } catch (error) {
        await rm(temporary, { force: true });
        throw new KeyholeError("config_error", `cannot write ${path} (${describe(error)})`);
      }
    },
    abort: () => rm(temporary, { force: true }),
  };
}
