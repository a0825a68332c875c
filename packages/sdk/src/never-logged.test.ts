/**
 * SECURITY-TESTS.md #12 (★), the SDK's part: whatever goes wrong — a wrong or hostile server, a bad
 * token, a network failure — the thrown errors and the Vault itself, however rendered, hold no
 * token text, seed, auth key or value, in any common encoding.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { inspect } from "node:util";
import { encodeBase64url, isKeyholeError, toHex, utf8 } from "@keyhole/core";
import { Vault } from "./index.js";
import { closedPort, errorReply, FakeServer, hangingHandler } from "./test-support/fake-server.js";
import {
  answerFor,
  canary,
  makeAgent,
  makeOwner,
  makeSecretVersion,
  type SecretVersion,
  type TestAgent,
  type TestOwner,
} from "./test-support/fixtures.js";

let owner: TestOwner;
let agent: TestAgent;
let value: string;
let v1: SecretVersion;
let v2: SecretVersion;
let server: FakeServer;
let dir: string;

before(async () => {
  owner = await makeOwner();
  agent = await makeAgent(owner);
  value = toHex(canary());
  v1 = await makeSecretVersion(owner, { name: "canary", value, recipients: [agent], version: 1 });
  v2 = await makeSecretVersion(owner, {
    name: "canary",
    value,
    recipients: [agent],
    version: 2,
    secretId: v1.secretId,
  });
  server = await FakeServer.start(() => ({ status: 500 }));
  dir = await mkdtemp(join(tmpdir(), "keyhole-sdk-log-"));
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

/** Every form in which a secret could leak: raw, hex, base64url, standard base64. */
function needles(token: string): [string, string][] {
  const forms = (label: string, bytes: Uint8Array): [string, string][] => [
    [`${label} hex`, toHex(bytes)],
    [`${label} base64url`, encodeBase64url(bytes)],
    [`${label} base64`, Buffer.from(bytes).toString("base64").replace(/=+$/, "")],
  ];
  return [
    ["token prefix", "kh1_"],
    ["token text", token],
    ["token body", token.slice(4)],
    ["agent token text", agent.tokenText],
    ["agent token body", agent.tokenText.slice(4)],
    ["value", value],
    ...forms("seed", agent.seed),
    ...forms("auth key", agent.authKey),
    ...forms("value", utf8(value)),
  ];
}

function renderings(subject: unknown): string[] {
  const out = [
    String(subject),
    inspect(subject),
    inspect(subject, { showHidden: true, depth: 20 }),
    inspect(subject, { showHidden: true, depth: 20, customInspect: false }),
    JSON.stringify(subject) ?? "",
  ];
  if (subject instanceof Error) out.push(subject.message, subject.stack ?? "");
  return out;
}

function assertClean(subject: unknown, token: string, scenario: string): void {
  for (const text of renderings(subject)) {
    for (const [label, needle] of needles(token)) {
      assert.ok(!text.includes(needle), `${scenario}: ${label} found in ${text.slice(0, 200)}`);
    }
  }
}

/** Runs `call`, which must throw a KeyholeError, and checks it and the vault for leaks. */
async function check(
  scenario: string,
  vault: Vault,
  call: (v: Vault) => Promise<unknown>,
  token = agent.tokenText,
) {
  let thrown: unknown;
  try {
    await call(vault);
  } catch (error) {
    thrown = error;
  }
  assert.ok(isKeyholeError(thrown), `${scenario}: expected a KeyholeError, got ${String(thrown)}`);
  assertClean(thrown, token, scenario);
  assertClean(vault, token, `${scenario} (vault)`);
}

function vaultWith(
  options: { token?: string; tokenFile?: string; addr?: string; timeoutMs?: number } = {},
): Vault {
  const { tokenFile, ...rest } = options;
  return tokenFile !== undefined
    ? new Vault({ addr: server.url, tokenFile, ...rest })
    : new Vault({ addr: server.url, token: agent.tokenText, ...rest });
}

test("a wrong or hostile server: nothing secret in errors or in the vault", async () => {
  const impostor = await makeOwner(owner.vaultId);
  const swapped = await makeSecretVersion(impostor, { name: "canary", value, recipients: [agent] });
  server.handler = () => ({ json: answerFor(swapped, agent) });
  await check("owner key swapped", vaultWith(), (v) => v.get("canary"));

  const forged = await makeSecretVersion(owner, {
    name: "canary",
    value,
    recipients: [agent],
    signer: impostor.key,
  });
  server.handler = () => ({ json: answerFor(forged, agent) });
  await check("forged signature", vaultWith(), (v) => v.use("canary", () => {}));

  // A server echoing the credentials it received into its error body and into answer fields.
  server.handler = ({ headers }) => ({
    status: 401,
    json: {
      error: {
        code: "unauthenticated",
        message: `bad ${headers.authorization} ${agent.tokenText}`,
      },
    },
  });
  await check("credentials echoed in an error", vaultWith(), (v) => v.get("canary"));
  server.handler = ({ headers }) => ({
    json: {
      ...answerFor(v1, agent),
      vault_id: String(headers.authorization),
      name: agent.tokenText,
    },
  });
  await check("credentials echoed in fields", vaultWith(), (v) => v.get("canary"));
  server.handler = () => ({
    status: 418,
    json: { error: { code: agent.tokenText, message: value } },
  });
  await check("unknown code", vaultWith(), (v) => v.list());
});

test("after a successful read, a rollback and an expired grant leave nothing secret behind", async () => {
  const vault = vaultWith();
  let n = 0;
  server.handler = () => ({ json: answerFor(n++ === 0 ? v2 : v1, agent) });
  assert.equal(await vault.get("canary"), value);
  await check("rollback", vault, (v) => v.get("canary"));
  const expired = await makeSecretVersion(owner, {
    name: "canary",
    value,
    recipients: [agent],
    secretId: v1.secretId,
    version: 3,
    notAfter: Date.now() - 1,
  });
  server.handler = () => ({ json: answerFor(expired, agent) });
  await check("grant expired", vault, (v) => v.get("canary"));
});

test("a bad token: nothing of it in errors or in the vault", async () => {
  const last = agent.tokenText.at(-1) === "A" ? "B" : "A";
  const corrupted = agent.tokenText.slice(0, -1) + last;
  await check(
    "bad checksum (option)",
    vaultWith({ token: corrupted }),
    (v) => v.get("canary"),
    corrupted,
  );
  const file = join(dir, "token");
  await writeFile(file, `${corrupted}\n`, { mode: 0o600 });
  await check(
    "bad checksum (file)",
    vaultWith({ tokenFile: file }),
    (v) => v.get("canary"),
    corrupted,
  );
  const truncated = agent.tokenText.slice(0, 60);
  await check("truncated", vaultWith({ token: truncated }), (v) => v.get("canary"), truncated);
  const saved = process.env.KEYHOLE_TOKEN;
  process.env.KEYHOLE_TOKEN = corrupted;
  try {
    await check(
      "bad checksum (env)",
      new Vault({ addr: server.url }),
      (v) => v.get("canary"),
      corrupted,
    );
  } finally {
    if (saved === undefined) delete process.env.KEYHOLE_TOKEN;
    else process.env.KEYHOLE_TOKEN = saved;
  }
  server.handler = () => errorReply("unauthenticated");
  await check("token refused by the server", vaultWith(), (v) => v.get("canary"));
});

test("a network failure: nothing secret in errors or in the vault", async () => {
  const port = await closedPort();
  await check("connection refused", vaultWith({ addr: `http://127.0.0.1:${port}` }), (v) =>
    v.get("canary"),
  );
  server.handler = hangingHandler();
  await check("timeout", vaultWith({ timeoutMs: 100 }), (v) => v.get("canary"));
});

test("the needles are real: an honest read returns the value the search looks for", async () => {
  server.handler = () => ({ json: answerFor(v2, agent) });
  const vault = vaultWith();
  assert.equal(await vault.get("canary"), value);
  assertClean(vault, agent.tokenText, "vault after a successful read");
  assert.throws(() => assertClean(new Error(`x ${agent.tokenText}`), agent.tokenText, "self-test"));
});
