/**
 * Test-only fault injection for the rotate route (SECURITY-TESTS #17, atomic rotation): the CLI's
 * e2e test `rotation-crash.test.ts` kills the server with SIGKILL just before or just after the
 * rotate transaction commits, to prove the owner can always recover exactly one working token.
 * It acts only when `KEYHOLE_TEST=1` and `KEYHOLE_TEST_CRASH_AT` names the step; otherwise it
 * does nothing. It reads `process.env` at the call, as it is no part of the server's config.
 */

/** The points around the rotate commit at which a test may kill the server. */
export type ServerCrashStep = "agent.rotate:before-commit" | "agent.rotate:after-commit";

/** Kills this process on the spot when a test asked for it at `step`. */
export function crashPoint(step: ServerCrashStep): void {
  if (process.env.KEYHOLE_TEST === "1" && process.env.KEYHOLE_TEST_CRASH_AT === step) {
    process.kill(process.pid, "SIGKILL");
  }
}
