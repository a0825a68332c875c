/**
 * SECURITY-TESTS.md #8 (★): a malicious server. Each attack is its own test; each must be refused
 * with the right code, and the `use` callback must never run (no value released).
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { type AgentSecretResponse, encodeBase64url, isKeyholeError, newId } from "@keyhole/core";
import { Vault } from "./index.js";
import { type FakeReply, FakeServer } from "./test-support/fake-server.js";
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
let alpha1: SecretVersion;
let alpha2: SecretVersion;
let beta: SecretVersion;
let server: FakeServer;

before(async () => {
  owner = await makeOwner();
  a = await makeAgent(owner);
  b = await makeAgent(owner);
  const secretId = newId("secret");
  alpha1 = await makeSecretVersion(owner, {
    name: "alpha",
    secretId,
    version: 1,
    value: "alpha-v1",
    recipients: [a, b],
  });
  alpha2 = await makeSecretVersion(owner, {
    name: "alpha",
    secretId,
    version: 2,
    value: "alpha-v2",
    recipients: [a, b],
  });
  beta = await makeSecretVersion(owner, { name: "beta", value: "beta-v1", recipients: [a] });
  server = await FakeServer.start(() => ({ status: 500 }));
});

after(() => server.close());
afterEach(() => {
  server.handler = () => ({ status: 500 });
});

function vaultA(): Vault {
  return new Vault({ addr: server.url, token: a.tokenText });
}

/** Serves `answers` in turn (the last one repeats). */
function serve(...answers: (AgentSecretResponse | FakeReply)[]): void {
  let i = 0;
  server.handler = () => {
    const answer = answers[Math.min(i++, answers.length - 1)];
    return answer !== undefined && "vault_id" in answer
      ? { json: answer }
      : (answer ?? { status: 500 });
  };
}

/** The call is refused with `code` (and a message matching `why`), and `fn` never sees a value. */
async function refused(vault: Vault, name: string, code: string, why?: RegExp): Promise<void> {
  let released = false;
  await assert.rejects(
    vault.use(name, () => {
      released = true;
    }),
    (error: unknown) => {
      assert.ok(isKeyholeError(error), `not a KeyholeError: ${String(error)}`);
      assert.equal(error.code, code);
      if (why !== undefined) assert.match(error.message, why);
      return true;
    },
  );
  assert.equal(released, false, "a value was released");
}

describe("honest control", () => {
  test("the honest answers open, so every refusal below is caused by the tampering", async () => {
    serve(answerFor(alpha2, a));
    assert.equal(await vaultA().get("alpha"), "alpha-v2");
    serve(answerFor(beta, a));
    assert.equal(await vaultA().get("beta"), "beta-v1");
  });
});

describe("malicious server (SECURITY-TESTS #8)", () => {
  test("a value forged by the server, sealed to the agent's key, signed by a non-owner key, is untrusted_server", async () => {
    const impostor = await makeOwner(owner.vaultId);
    const forged = await makeSecretVersion(owner, {
      name: "alpha",
      secretId: alpha2.secretId,
      version: 3,
      value: "attacker-controlled",
      recipients: [a],
      signer: impostor.key,
    });
    // The answer names the real owner's key, so only the signature check can catch it.
    serve(answerFor(forged, a));
    await refused(vaultA(), "alpha", "untrusted_server", /signature/);
  });

  test("a swapped owner key (not the fingerprint in the token) is untrusted_server", async () => {
    const impostor = await makeOwner(owner.vaultId);
    const forged = await makeSecretVersion(impostor, {
      name: "alpha",
      value: "attacker-controlled",
      recipients: [a],
    });
    serve(answerFor(forged, a));
    await refused(vaultA(), "alpha", "untrusted_server", /owner key/);
  });

  test("an older signed version after a newer one is rollback_detected", async () => {
    const vault = vaultA();
    serve(answerFor(alpha2, a), answerFor(alpha1, a), answerFor(alpha2, a));
    assert.equal(await vault.get("alpha"), "alpha-v2");
    await refused(vault, "alpha", "rollback_detected");
    assert.equal(await vault.get("alpha"), "alpha-v2", "the current version still opens");
  });

  test("an earlier grant of the same version after a later one is rollback_detected", async () => {
    // The owner narrowed the hosts by re-granting version 2; the server replays the wider grant.
    const wide = await makeSecretVersion(owner, {
      name: "alpha",
      secretId: alpha2.secretId,
      version: 2,
      value: "alpha-v2",
      recipients: [a],
      issuedAt: Date.now() - 60_000,
      allowedHosts: ["api.example.com", "evil.example"],
    });
    const narrow = await makeSecretVersion(owner, {
      name: "alpha",
      secretId: alpha2.secretId,
      version: 2,
      value: "alpha-v2",
      recipients: [a],
      issuedAt: Date.now() - 1_000,
      allowedHosts: ["api.example.com"],
    });
    const vault = vaultA();
    serve(answerFor(narrow, a), answerFor(wide, a), answerFor(narrow, a));
    const hosts = await vault.use("alpha", (_bytes, info) => [...info.allowedHosts]);
    assert.deepEqual(hosts, ["api.example.com"]);
    await refused(vault, "alpha", "rollback_detected", /earlier grant/);
    assert.equal(await vault.get("alpha"), "alpha-v2", "the later grant still opens");
  });

  test("the same version again is not a rollback", async () => {
    const vault = vaultA();
    serve(answerFor(alpha1, a));
    assert.equal(await vault.get("alpha"), "alpha-v1");
    assert.equal(await vault.get("alpha"), "alpha-v1");
  });

  test("a replayed grant whose not_after has passed is grant_expired", async () => {
    const expired = await makeSecretVersion(owner, {
      name: "alpha",
      value: "stale",
      recipients: [a],
      issuedAt: Date.now() - 60_000,
      notAfter: Date.now() - 1_000,
    });
    serve(answerFor(expired, a));
    await refused(vaultA(), "alpha", "grant_expired");
    const live = await makeSecretVersion(owner, {
      name: "alpha",
      value: "live",
      recipients: [a],
      notAfter: Date.now() + 60_000,
    });
    serve(answerFor(live, a));
    assert.equal(await vaultA().get("alpha"), "live");
  });

  test("another agent's valid grant served for the asked name is untrusted_server", async () => {
    serve(answerFor(alpha2, b));
    await refused(vaultA(), "alpha", "untrusted_server", /signature/);
  });

  test("a valid grant for another secret name is untrusted_server", async () => {
    serve(answerFor(beta, a));
    await refused(vaultA(), "alpha", "untrusted_server", /another secret name/);
  });

  test("a valid grant for another secret relabelled with the asked name is untrusted_server", async () => {
    serve({ ...answerFor(beta, a), name: "alpha" });
    await refused(vaultA(), "alpha", "untrusted_server", /signature/);
  });

  test("a wrap for another agent is untrusted_server", async () => {
    serve({ ...answerFor(alpha2, a), wrap: answerFor(alpha2, b).wrap });
    await refused(vaultA(), "alpha", "untrusted_server", /signature/);
  });

  test("KHS1 of version N with the wrap and grant of version N+1 is untrusted_server", async () => {
    serve({ ...answerFor(alpha2, a), value: answerFor(alpha1, a).value });
    await refused(vaultA(), "alpha", "untrusted_server", /signature/);
  });

  test("a version relabelled upwards is untrusted_server", async () => {
    serve({ ...answerFor(alpha1, a), version: 9 });
    await refused(vaultA(), "alpha", "untrusted_server", /signature/);
  });

  test("a vault id that changes between calls is untrusted_server, even when owner-signed", async () => {
    const otherVault = await makeSecretVersion(owner, {
      name: "alpha",
      value: "other-vault",
      recipients: [a],
      vaultId: newId("vault"),
    });
    serve(answerFor(otherVault, a));
    assert.equal(await vaultA().get("alpha"), "other-vault", "control: it verifies on its own");
    const vault = vaultA();
    serve(answerFor(alpha1, a), answerFor(otherVault, a));
    assert.equal(await vault.get("alpha"), "alpha-v1");
    await refused(vault, "alpha", "untrusted_server", /vault id or agent id changed/);
  });

  test("an agent id that changes between calls is untrusted_server, even when owner-signed", async () => {
    const relabelled = await makeSecretVersion(owner, {
      name: "alpha",
      value: "other-agent-id",
      recipients: [{ id: newId("agent"), publicKey: a.publicKey }],
    });
    const [answer] = [...relabelled.answers.values()];
    assert.ok(answer !== undefined);
    serve(answer);
    assert.equal(await vaultA().get("alpha"), "other-agent-id", "control: it verifies on its own");
    const vault = vaultA();
    serve(answerFor(alpha1, a), answer);
    assert.equal(await vault.get("alpha"), "alpha-v1");
    await refused(vault, "alpha", "untrusted_server", /vault id or agent id changed/);
  });

  test("a grant whose allowed hosts or times were changed is untrusted_server", async () => {
    const honest = answerFor(alpha2, a);
    for (const grant of [
      { ...honest.grant, allowed_hosts: ["api.example.com", "evil.example.net"] },
      { ...honest.grant, not_after: 0, issued_at: honest.grant.issued_at + 1 },
    ]) {
      serve({ ...honest, grant });
      await refused(vaultA(), "alpha", "untrusted_server", /signature/);
    }
  });
});

describe("malformed answers (SECURITY-TESTS #8, #10)", () => {
  test("malformed JSON is untrusted_server", async () => {
    const text = JSON.stringify(answerFor(alpha1, a));
    for (const raw of [
      "",
      "{",
      "null",
      "[]",
      '"alpha"',
      "42",
      text.slice(0, -10),
      `${text}}`,
      "\u0000",
    ]) {
      serve({ raw });
      await refused(vaultA(), "alpha", "untrusted_server");
    }
  });

  test("wrong types and out-of-range fields are untrusted_server", async () => {
    const honest = answerFor(alpha1, a);
    const bad: Record<string, unknown>[] = [
      { version: "1" },
      { version: 0 },
      { version: -1 },
      { version: 1.5 },
      { version: 2 ** 53 },
      { version: null },
      { vault_id: 7 },
      { vault_id: undefined },
      { vault_id: "agt_AAAAAAAAAAAAAAAAAAAAAA" },
      { agent_id: "vlt_AAAAAAAAAAAAAAAAAAAAAA" },
      { agent_id: "agt_short" },
      { secret_id: null },
      { name: "../alpha" },
      { name: ["alpha"] },
      { owner_sign_pk: encodeBase64url(new Uint8Array(31)) },
      { owner_sign_pk: 0 },
      { value: "" },
      {
        value: encodeBase64url(
          new TextEncoder().encode("KHS2\u0001xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ),
      },
      { wrap: honest.wrap.slice(0, -4) },
      { wrap: honest.value },
      { grant: undefined },
      { grant: [] },
      { grant: { ...honest.grant, sig: honest.grant.sig.slice(0, -2) } },
      { grant: { ...honest.grant, issued_at: String(honest.grant.issued_at) } },
      { grant: { ...honest.grant, not_after: -1 } },
      { grant: { ...honest.grant, not_after: 1e300 } },
      { grant: { ...honest.grant, allowed_hosts: "api.example.com" } },
      { grant: { ...honest.grant, allowed_hosts: [42] } },
      { grant: { ...honest.grant, allowed_hosts: ["API.example.com"] } },
      { grant: { ...honest.grant, allowed_hosts: ["b.example.com", "a.example.com"] } },
    ];
    for (const change of bad) {
      serve({ raw: JSON.stringify({ ...honest, ...change }) });
      await refused(vaultA(), "alpha", "untrusted_server");
    }
  });

  test("non-canonical base64url in any byte field is untrusted_server", async () => {
    const honest = answerFor(alpha1, a);
    const flipLowBit = (text: string) => {
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const last = alphabet.indexOf(text.at(-1) ?? "A");
      return text.slice(0, -1) + alphabet.charAt(last ^ 1);
    };
    const toStd = (text: string) => text.replaceAll("-", "+").replaceAll("_", "/");
    const changes: Record<string, unknown>[] = [
      // 32 bytes leave 2 spare bits in the last character: same bytes, second spelling.
      { owner_sign_pk: flipLowBit(honest.owner_sign_pk) },
      { owner_sign_pk: `${honest.owner_sign_pk}=` },
      { value: `${honest.value}==` },
      { value: ` ${honest.value}` },
      { wrap: toStd(honest.wrap) === honest.wrap ? `${honest.wrap}=` : toStd(honest.wrap) },
      { grant: { ...honest.grant, sig: `${honest.grant.sig}==` } },
      { grant: { ...honest.grant, sig: flipLowBit(honest.grant.sig) } },
    ];
    for (const change of changes) {
      serve({ raw: JSON.stringify({ ...honest, ...change }) });
      await refused(vaultA(), "alpha", "untrusted_server", /malformed/);
    }
  });

  test("a malformed secret list is untrusted_server", async () => {
    for (const json of [
      {},
      { secrets: {} },
      { secrets: [{ name: "alpha" }] },
      { secrets: [{ name: "alpha", version: 0 }] },
      { secrets: [{ name: "a/b", version: 1 }] },
      {
        secrets: [
          { name: "alpha", version: 1 },
          { name: "alpha", version: 2 },
        ],
      },
      [],
    ]) {
      server.handler = () => ({ json });
      await assert.rejects(
        vaultA().list(),
        (error: unknown) => isKeyholeError(error) && error.code === "untrusted_server",
      );
    }
  });
});
