/**
 * An owner initialised against the fake server in a temporary KEYHOLE_HOME, with a `cli`
 * function that runs the real command dispatcher in-process on a memory Io.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../cli.js";
import { type FakeServer, startFakeServer } from "./fake-server.js";
import { type MemoryIo, type MemoryIoOptions, memoryIo } from "./memory-io.js";

/** What one in-process CLI run produced. */
export interface CliRun {
  readonly code: number;
  readonly io: MemoryIo;
}

/** A fake server, an initialised owner and a way to run commands as that owner. */
export interface OwnerFixture {
  readonly fake: FakeServer;
  readonly home: string;
  readonly env: Record<string, string>;
  cli(argv: string[], options?: MemoryIoOptions): Promise<CliRun>;
  close(): Promise<void>;
}

/** Starts a fake server and runs `keyhole init` against it (fast test Argon2). */
export async function ownerFixture(): Promise<OwnerFixture> {
  const fake = await startFakeServer();
  const dir = await mkdtemp(join(tmpdir(), "keyhole-cli-test-"));
  const home = join(dir, "home");
  const env = {
    KEYHOLE_HOME: home,
    KEYHOLE_ADDR: fake.url,
    KEYHOLE_PASSPHRASE: "correct horse battery staple",
    KEYHOLE_TEST: "1",
    KEYHOLE_TEST_ARGON2_FAST: "1",
  };
  const cli = async (argv: string[], options: MemoryIoOptions = {}): Promise<CliRun> => {
    const io = memoryIo({ cwd: dir, ...options, env: { ...env, ...options.env } });
    return { code: await runCli(argv, io), io };
  };
  const init = await cli(["init", "--bootstrap-code", fake.bootstrapCode]);
  if (init.code !== 0) throw new Error(`init failed: ${init.io.err()}`);
  return {
    fake,
    home,
    env,
    cli,
    close: async () => {
      await fake.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
