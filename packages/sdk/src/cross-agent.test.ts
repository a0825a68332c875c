/**
 * SECURITY-TESTS.md #3 (★), the cryptographic half: an agent given other agents' rows — their
 * wraps, grants and ciphertexts, in every combination — opens none of them. The server-side half
 * (a fetch succeeds iff granted) belongs to the server's tests.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type AgentSecretResponse,
  agentRecipientId,
  decodeBase64url,
  encodeWrapAad,
  fingerprint,
  hpkeOpen,
  isKeyholeError,
  parseValueEnvelope,
  parseWrap,
  utf8,
} from "@keyhole/core";
import fc from "fast-check";
import { parseSecretAnswer } from "./answer.js";
import { Vault } from "./index.js";
import { openSecretAnswer } from "./open-secret.js";
import { FakeServer } from "./test-support/fake-server.js";
import {
  answerFor,
  makeAgent,
  makeOwner,
  makeSecretVersion,
  type SecretVersion,
  type TestAgent,
  type TestOwner,
} from "./test-support/fixtures.js";

let owner: TestOwner;
let a: TestAgent;
let b: TestAgent;
let secretA: SecretVersion;
let secretB: SecretVersion;
let server: FakeServer;

before(async () => {
  owner = await makeOwner();
  a = await makeAgent(owner);
  b = await makeAgent(owner);
  secretA = await makeSecretVersion(owner, { name: "a-secret", value: "A-VALUE", recipients: [a] });
  secretB = await makeSecretVersion(owner, { name: "b-secret", value: "B-VALUE", recipients: [b] });
  server = await FakeServer.start(() => ({ status: 500 }));
});

after(() => server.close());

/** Which row each part of the answer comes from. */
interface Mix {
  meta: "A" | "B";
  agentId: "A" | "B";
  value: "A" | "B";
  wrap: "A" | "B";
  grant: "A" | "B";
}

function mixed(mix: Mix): AgentSecretResponse {
  const rowA = answerFor(secretA, a);
  const rowB = answerFor(secretB, b);
  const pick = (side: "A" | "B") => (side === "A" ? rowA : rowB);
  const meta = pick(mix.meta);
  return {
    ...meta,
    agent_id: pick(mix.agentId).agent_id,
    value: pick(mix.value).value,
    wrap: pick(mix.wrap).wrap,
    grant: pick(mix.grant).grant,
  };
}

function allMixes(): Mix[] {
  const sides = ["A", "B"] as const;
  const out: Mix[] = [];
  for (const meta of sides)
    for (const agentId of sides)
      for (const value of sides)
        for (const wrap of sides)
          for (const grant of sides) out.push({ meta, agentId, value, wrap, grant });
  return out;
}

describe("cross-agent isolation (SECURITY-TESTS #3)", () => {
  test("agent A opens its own row, and no row with any part of B's, whatever name it asks", async () => {
    let refusals = 0;
    for (const mix of allMixes()) {
      for (const asked of ["a-secret", "b-secret"]) {
        const answer = mixed(mix);
        server.handler = () => ({ json: answer });
        const vault = new Vault({ addr: server.url, token: a.tokenText });
        const pureA = Object.values(mix).every((side) => side === "A");
        if (pureA && asked === "a-secret") {
          assert.equal(await vault.get(asked), "A-VALUE", "control");
          continue;
        }
        let released: Uint8Array | undefined;
        await assert.rejects(
          vault.use(asked, (bytes) => {
            released = Uint8Array.from(bytes);
          }),
          (error: unknown) => isKeyholeError(error) && error.code === "untrusted_server",
          `mix ${JSON.stringify(mix)} asked ${asked}`,
        );
        assert.equal(released, undefined);
        refusals++;
      }
    }
    assert.equal(refusals, 63);
  });

  test("A's private key cannot open B's wrap under any AAD, even past the fingerprint check", async () => {
    const rowA = answerFor(secretA, a);
    const rowB = answerFor(secretB, b);
    const wrapB = parseWrap(decodeBase64url(rowB.wrap));
    const dekIds = [rowA, rowB].map((r) => parseValueEnvelope(decodeBase64url(r.value)).dekId);
    let attempts = 0;
    for (const row of [rowA, rowB])
      for (const dekId of dekIds)
        for (const agent of [a, b])
          for (const publicKey of [a.publicKey, b.publicKey]) {
            const ref = { vaultId: row.vault_id, secretId: row.secret_id, version: row.version };
            const aad = encodeWrapAad(ref, dekId, {
              recipientId: agentRecipientId(agent.id),
              publicKey,
            });
            await assert.rejects(
              hpkeOpen(a.recipient, wrapB.enc, utf8("keyhole/v1/dek-wrap"), aad, wrapB.ciphertext),
              (error: unknown) => isKeyholeError(error) && error.code === "decrypt_failed",
            );
            attempts++;
          }
    assert.equal(attempts, 16);
    // Control: B's own key opens it with the right AAD, so the refusals above mean something.
    const ref = { vaultId: rowB.vault_id, secretId: rowB.secret_id, version: rowB.version };
    const aad = encodeWrapAad(ref, dekIds[1] as Uint8Array, {
      recipientId: agentRecipientId(b.id),
      publicKey: b.publicKey,
    });
    const dek = await hpkeOpen(
      b.recipient,
      wrapB.enc,
      utf8("keyhole/v1/dek-wrap"),
      aad,
      wrapB.ciphertext,
    );
    assert.equal(dek.length, 32);
  });

  test("property: given every row of a random grant matrix, an agent opens exactly its own rows", async () => {
    const agents = [a, b, await makeAgent(owner), await makeAgent(owner)];
    const contexts = await Promise.all(
      agents.map(async (agent) => ({
        agent,
        recipientFingerprint: await fingerprint(agent.publicKey),
      })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.boolean(), { minLength: agents.length, maxLength: agents.length }), {
          minLength: 1,
          maxLength: 3,
        }),
        async (matrix) => {
          const secrets = await Promise.all(
            matrix.map((row, i) =>
              makeSecretVersion(owner, {
                name: `s${i}`,
                value: `value-${i}`,
                recipients: agents.filter((_, j) => row[j]),
              }),
            ),
          );
          const rows = secrets.flatMap((s) => [...s.answers.values()]);
          for (const { agent, recipientFingerprint } of contexts) {
            for (const secret of secrets) {
              for (const row of rows) {
                const own = row.agent_id === agent.id && row.name === secret.name;
                const opened = await openSecretAnswer(parseSecretAnswer(row), {
                  askedName: secret.name,
                  ownerFingerprint: owner.fingerprint,
                  recipient: agent.recipient,
                  recipientFingerprint,
                  pinnedVaultId: undefined,
                  pinnedAgentId: undefined,
                  floor: () => undefined,
                  now: Date.now(),
                }).then(
                  (bytes) => new TextDecoder().decode(bytes),
                  () => null,
                );
                assert.equal(opened, own ? `value-${secret.name.slice(1)}` : null);
              }
            }
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});
