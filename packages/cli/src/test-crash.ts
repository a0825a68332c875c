/**
 * Test-only fault injection for `agent rotate` (SECURITY-TESTS #17, atomic rotation). The e2e
 * test `e2e/rotation-crash.test.ts` kills the owner CLI at each named step with SIGKILL, which
 * no handler can soften, to prove that every interruption leaves exactly one working token. It
 * acts only when `KEYHOLE_TEST=1` (scripts/test.mjs sets it, as for the fast Argon2 setting in
 * owner/key-file.ts) and `KEYHOLE_TEST_CRASH_AT` names the step; otherwise it does nothing.
 */

/** The steps of `agent rotate --token-file PATH` at which a test may kill the CLI, in order. */
export const ROTATE_CRASH_STEPS = [
  /** New key minted and grants re-wrapped; nothing recorded anywhere yet. */
  "rotate:minted",
  /** The new key is pinned as pending in config.json; PATH.pending not written yet. */
  "rotate:pending-pinned",
  /** PATH.pending holds the new token; the rotate request is not sent yet. */
  "rotate:pending-written",
  /** The server committed and answered; nothing recorded here yet. */
  "rotate:answered",
  /** The new key is pinned as current; PATH.pending not yet moved over PATH. */
  "rotate:pinned",
  /** PATH holds the new token (renamed, directory fsynced); nothing printed yet. */
  "rotate:renamed",
] as const;

/** One step of `ROTATE_CRASH_STEPS`. */
export type RotateCrashStep = (typeof ROTATE_CRASH_STEPS)[number];

/** Kills this process on the spot when a test asked for it at `step`. */
export function crashPoint(
  env: Readonly<Record<string, string | undefined>>,
  step: RotateCrashStep,
): void {
  if (env.KEYHOLE_TEST === "1" && env.KEYHOLE_TEST_CRASH_AT === step) {
    process.kill(process.pid, "SIGKILL");
  }
}
