import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeBase64url, encodeBase64url, formatAgentAuthorization } from "@keyhole/core";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call, type HttpResult } from "./test-support/http.js";
import { agentGet, canary, fetchAndOpen, type TestAgent, TestOwner } from "./test-support/owner.js";

/** Every text form a secret could leak in. */
function forms(secret: Uint8Array): string[] {
  const buf = Buffer.from(secret);
  return [
    buf.toString("hex"),
    buf.toString("base64"),
    encodeBase64url(secret),
    encodeURIComponent(buf.toString("base64")),
  ];
}

/** Raw bytes and the byte forms of its encodings (UTF-8 and UTF-16LE). */
function byteForms(secret: Uint8Array): Buffer[] {
  return [
    Buffer.from(secret),
    ...forms(secret).flatMap((f) => [Buffer.from(f, "utf8"), Buffer.from(f, "utf16le")]),
  ];
}

function seedOf(agent: TestAgent): Uint8Array {
  return decodeBase64url(agent.token.slice(4)).subarray(16, 48);
}

describe("nothing secret reaches the logs, error bodies or the database (SECURITY-TESTS #1, #12)", () => {
  let t: TestServer;
  const secrets: Uint8Array[] = [];
  const tokens: string[] = [];
  const responses: HttpResult[] = [];

  before(async () => {
    t = await startTestServer({ logLevel: "debug" });
    const owner = await TestOwner.initialized(t);
    const values = [canary(), canary(), canary()];
    secrets.push(...values);
    await owner.putSecret("one", values[0] as Uint8Array);
    await owner.putSecret("two", values[1] as Uint8Array);
    const agent = await owner.createAgent("ci", ["one", "two"]);
    const other = await owner.createAgent("other", ["one"]);
    await owner.putSecret("one", values[2] as Uint8Array);
    responses.push((await fetchAndOpen(t.url, agent, "one")).res);
    responses.push((await fetchAndOpen(t.url, agent, "two")).res);
    const { agent: rotated } = await owner.rotateAgent(other, ["one"]);
    responses.push((await fetchAndOpen(t.url, rotated, "one")).res);
    await owner.request("DELETE", "/v1/owner/grants/ci/two");
    await owner.request("POST", "/v1/owner/agents/ci/revoke");
    for (const a of [agent, other, rotated]) {
      tokens.push(a.token);
      secrets.push(a.authKey, seedOf(a));
    }
    // Failure paths, at debug level, with secrets in the places a careless server would echo.
    const leak = encodeBase64url(values[0] as Uint8Array);
    responses.push(await agentGet(t.url, agent, "/v1/agent/secrets/one"));
    responses.push(
      await call(t.url, {
        method: "GET",
        path: "/v1/agent/self",
        headers: { authorization: formatAgentAuthorization(rotated.tokenId, other.authKey) },
      }),
    );
    responses.push(
      await call(t.url, {
        method: "GET",
        path: "/v1/agent/self",
        headers: { authorization: `Keyhole ${rotated.token}` },
      }),
    );
    responses.push(await owner.request("POST", "/v1/owner/grants", { [leak]: leak }));
    responses.push(await owner.request("POST", "/v1/owner/grants", `{"value":"${leak}"`));
    responses.push(
      await owner.request("PUT", "/v1/owner/secrets/one", { value: leak, token: rotated.token }),
    );
    const body = await owner.agentCreateBody(await owner.mintAgent("late"));
    secrets.push(decodeBase64url(String(body.auth_key)));
    t.auditFault.fail = true;
    try {
      responses.push(await owner.request("POST", "/v1/owner/agents", body));
      responses.push(await agentGet(t.url, rotated, "/v1/agent/secrets/one"));
    } finally {
      t.auditFault.fail = false;
    }
    await t.close({ keepDir: true });
  });
  after(() => t.close());

  it("ran every flow, including failures, at debug level", () => {
    assert.ok(t.logs.length > 20);
    assert.ok(
      t.logs.some((l) => l.includes('"frames"')),
      "debug adds stack frames",
    );
    assert.ok(responses.some((r) => r.status === 500));
    assert.equal(secrets.length, 3 + 3 * 2 + 1);
  });

  it("no log line holds a token, seed, auth key or value", () => {
    const text = t.logs.join("\n");
    assert.equal(text.includes("kh1_"), false);
    for (const secret of secrets)
      for (const form of forms(secret)) assert.equal(text.includes(form), false);
  });

  it("no response body holds a token, seed, auth key or plaintext value", () => {
    const text = responses.map((r) => r.text).join("\n");
    assert.equal(text.includes("kh1_"), false);
    for (const secret of secrets)
      for (const form of forms(secret)) assert.equal(text.includes(form), false);
  });

  it("the database file, its WAL and every file of the data dir hold none of them", () => {
    const files = readdirSync(t.dataDir).map((f) => join(t.dataDir, f));
    assert.ok(files.some((f) => f.endsWith("keyhole.db")));
    assert.ok(!existsSync(join(t.dataDir, "bootstrap-code")));
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const token of tokens) assert.equal(bytes.includes(Buffer.from(token)), false, file);
      for (const secret of secrets) {
        for (const form of byteForms(secret)) assert.equal(bytes.includes(form), false, file);
      }
    }
  });
});
