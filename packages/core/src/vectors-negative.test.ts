/**
 * The frozen negative vectors (test/vectors/v1-negative.json): inputs every release must reject
 * with the generic error named in the file. The agent keys come from v1.json's token.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { rejectsWith } from "./fixtures.test.helper.js";
import {
  type AgentKeys,
  isKeyholeError,
  openValue,
  parseToken,
  toHex,
  tryDecodeBase64url,
  unwrapDek,
} from "./index.js";
import { h, negative, v1 } from "./vectors.test.helper.js";

describe("negative vectors v1", () => {
  const n = negative;
  const ref = { vaultId: n.value.vault_id, secretId: n.value.secret_id, version: n.value.version };
  let agentKeys: AgentKeys;

  before(async () => {
    agentKeys = await parseToken(v1.token.text).deriveKeys();
  });

  it("control: the unmodified small envelope and wrap open", async () => {
    assert.equal(
      toHex(await openValue(ref, h(n.value.dek), h(n.value.envelope))),
      n.value.plaintext,
    );
    const dek = await unwrapDek(
      ref,
      h(n.value.dek_id),
      n.wrap.recipient_id,
      agentKeys.recipient,
      h(n.wrap.wrap),
    );
    assert.equal(toHex(dek), n.value.dek);
  });

  it("every KHS1 case (each bit flip, wrong suite, magic, length) fails with its generic error", async () => {
    assert.ok(n.value.cases.length >= h(n.value.envelope).length * 8);
    for (const c of n.value.cases) {
      const error = await rejectsWith(() => openValue(ref, h(n.value.dek), h(c.envelope)), c.error);
      assert.ok(isKeyholeError(error), c.name);
    }
  });

  // 101 × 8 HPKE opens: the one expensive loop of this file.
  it("every KHW1 case (each bit flip, wrong suite, magic, length) fails with its generic error", async () => {
    assert.ok(n.wrap.cases.length >= 101 * 8);
    for (const c of n.wrap.cases) {
      await rejectsWith(
        () =>
          unwrapDek(ref, h(n.value.dek_id), n.wrap.recipient_id, agentKeys.recipient, h(c.wrap)),
        c.error,
      );
    }
  });

  it("every token case is invalid_token", () => {
    assert.ok(n.token.cases.length > 0);
    for (const c of n.token.cases) {
      assert.throws(
        () => parseToken(c.text),
        (e) => isKeyholeError(e) && e.code === "invalid_token",
        c.name,
      );
    }
  });

  it("every non-canonical base64url case decodes to null", () => {
    assert.ok(n.base64url.cases.length > 0);
    for (const c of n.base64url.cases) assert.equal(tryDecodeBase64url(c.text), null, c.name);
  });
});
