import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { makeOwner, type Owner } from "./fixtures.test.helper.js";
import {
  type AgentKeyStatement,
  concatBytes,
  encodeAgentKeyMessage,
  lp,
  randomBytes,
  signAgentKey,
  u64,
  verifyAgentKey,
} from "./index.js";

describe("agent key statement KHK1", () => {
  let owner: Owner;
  let statement: AgentKeyStatement;
  let sig: Uint8Array;

  before(async () => {
    owner = await makeOwner();
    statement = {
      vaultId: "vlt_v",
      agentId: "agt_a",
      agentPublicKey: randomBytes(32),
      createdAt: 1_767_225_600_000,
    };
    sig = await signAgentKey(owner.signing, statement);
  });

  it("encodes LP(label) ‖ LP(vault) ‖ LP(agent) ‖ LP(pk) ‖ u64(created_at)", () => {
    assert.deepEqual(
      encodeAgentKeyMessage(statement),
      concatBytes(
        lp("keyhole/v1/agent-key"),
        lp("vlt_v"),
        lp("agt_a"),
        lp(statement.agentPublicKey),
        u64(statement.createdAt),
      ),
    );
  });

  it("verifies under the owner's key", async () => {
    assert.equal(await verifyAgentKey(owner.signing.publicKey, statement, sig), true);
  });

  it("fails for a swapped agent key, agent, vault, time or owner", async () => {
    const pk = owner.signing.publicKey;
    assert.equal(
      await verifyAgentKey(pk, { ...statement, agentPublicKey: randomBytes(32) }, sig),
      false,
    );
    assert.equal(await verifyAgentKey(pk, { ...statement, agentId: "agt_b" }, sig), false);
    assert.equal(await verifyAgentKey(pk, { ...statement, vaultId: "vlt_w" }, sig), false);
    assert.equal(
      await verifyAgentKey(pk, { ...statement, createdAt: statement.createdAt + 1 }, sig),
      false,
    );
    assert.equal(
      await verifyAgentKey((await makeOwner()).signing.publicKey, statement, sig),
      false,
    );
  });

  it("is false, not an exception, for a public key that is not 32 bytes", async () => {
    const longer = concatBytes(statement.agentPublicKey, Uint8Array.of(0));
    const signedLonger = await signAgentKey(owner.signing, {
      ...statement,
      agentPublicKey: longer,
    });
    assert.equal(
      await verifyAgentKey(
        owner.signing.publicKey,
        { ...statement, agentPublicKey: longer },
        signedLonger,
      ),
      false,
    );
  });
});
