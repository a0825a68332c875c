// The expiry boundary of openSecretAnswer, with the clock fixed: a grant is valid strictly
// before not_after and expired at it (the same rule as the server's).
import assert from "node:assert/strict";
import { test } from "node:test";
import { fingerprint, isKeyholeError } from "@keyhole/core";
import { parseSecretAnswer } from "./answer.js";
import { openSecretAnswer } from "./open-secret.js";
import { answerFor, makeAgent, makeOwner, makeSecretVersion } from "./test-support/fixtures.js";

test("a grant opens one millisecond before not_after and is grant_expired exactly at it", async () => {
  const owner = await makeOwner();
  const agent = await makeAgent(owner);
  const notAfter = Date.now() + 60_000;
  const version = await makeSecretVersion(owner, {
    name: "alpha",
    value: "boundary",
    recipients: [agent],
    notAfter,
  });
  const answer = parseSecretAnswer(answerFor(version, agent));
  const context = {
    askedName: "alpha",
    ownerFingerprint: owner.fingerprint,
    recipient: agent.recipient,
    recipientFingerprint: await fingerprint(agent.publicKey),
    pinnedVaultId: undefined,
    pinnedAgentId: undefined,
    floor: () => undefined,
  };
  const value = await openSecretAnswer(answer, { ...context, now: notAfter - 1 });
  assert.equal(new TextDecoder().decode(value), "boundary");
  await assert.rejects(
    openSecretAnswer(answer, { ...context, now: notAfter }),
    (error: unknown) => isKeyholeError(error) && error.code === "grant_expired",
  );
});
