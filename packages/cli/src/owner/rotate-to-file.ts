/**
 * `agent rotate NAME --token-file PATH`, safe against a kill at any step (SECURITY-TESTS #17).
 * The server swaps the old token for the new one in one transaction, so the only risk is on this
 * side: the new token must be on disk before the server may commit. The rule is simple:
 *
 * 1. Before the request is sent, the new token goes to `PATH.pending` (0600, atomic, fsynced).
 * 2. After the server's answer, `PATH.pending` is renamed over PATH.
 * 3. A run that finds `PATH.pending` first checks that it holds the key this machine pinned as
 *    the agent's pending key before sending (anything else was not written by us: refused, left
 *    alone), then asks the server which key the agent has now. If it is the pending token's, the
 *    earlier rotate committed: the file is renamed over PATH and nothing is rotated again. If
 *    not, it never committed: the file is removed and the rotate runs as usual.
 * 4. The pending pin is cleared only once PATH holds the token.
 *
 * So after a kill anywhere, PATH or `PATH.pending` holds the one working token, and running the
 * same command again leaves it in PATH. Two rotates into one PATH would overwrite each other's
 * `PATH.pending`: `PATH.lock` makes them take turns.
 */
import type { AgentView } from "@keyhole/core";
import { crashPoint } from "../test-crash.js";
import { rotateAgent, settleInterruptedRotate } from "./agents.js";
import { withFileLock } from "./config-lock.js";
import {
  discardPendingToken,
  promotePendingToken,
  readPendingToken,
  writePendingToken,
} from "./pending-token.js";
import { withoutPendingKey } from "./pins.js";
import type { OwnerSession } from "./session.js";

/** What `rotateIntoFile` did. */
export interface RotatedIntoFile {
  readonly agent: AgentView;
  /** True when an interrupted rotate had committed and was only finished now. */
  readonly resumed: boolean;
}

/**
 * Rotates `name`'s token into `target`, or finishes an interrupted rotate into it. On failure
 * after a request was sent, `PATH.pending` is kept: it may hold the only working token, and the
 * next run settles it.
 */
export function rotateIntoFile(
  session: OwnerSession,
  name: string,
  target: string,
): Promise<RotatedIntoFile> {
  return withFileLock(`${target}.lock`, () => rotateLocked(session, name, target));
}

async function rotateLocked(
  session: OwnerSession,
  name: string,
  target: string,
): Promise<RotatedIntoFile> {
  const pending = await readPendingToken(target);
  if (pending !== null) {
    let settled: AgentView | null;
    try {
      settled = await settleInterruptedRotate(session, name, pending);
    } finally {
      pending.destroy();
    }
    if (settled !== null) {
      await promotePendingToken(target);
      await session.updatePins((c) => withoutPendingKey(c, settled.id));
      return { agent: settled, resumed: true };
    }
    await discardPendingToken(target);
  }
  const rotated = await rotateAgent(session, name, {
    beforeSend: (token) => writePendingToken(target, token),
    keepPendingPin: true,
  });
  try {
    await promotePendingToken(target);
  } finally {
    rotated.token.destroy();
  }
  crashPoint(session.io.env, "rotate:renamed");
  await session.updatePins((c) => withoutPendingKey(c, rotated.agent.id));
  return { agent: rotated.agent, resumed: false };
}
