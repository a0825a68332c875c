import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import fc from "fast-check";
import {
  type Agent,
  makeAgent,
  makeOwner,
  must,
  type Owner,
  type SealedVersion,
  sealVersion,
} from "./fixtures.test.helper.js";
import {
  canonicalHosts,
  concatBytes,
  encodeGrantMessage,
  type GrantStatement,
  isCanonicalHosts,
  isKeyholeError,
  isValidHost,
  lp,
  sha256,
  signGrant,
  u64,
  utf8,
  verifyGrant,
} from "./index.js";

describe("grant hosts", () => {
  it("canonicalHosts trims, lower-cases, de-duplicates and sorts", () => {
    assert.deepEqual(
      canonicalHosts([" B.example.com", "a.example.com", "b.example.com ", "A.EXAMPLE.COM"]),
      ["a.example.com", "b.example.com"],
    );
    assert.deepEqual(canonicalHosts([]), []);
  });

  it("accepts host names, IPv4 literals and ports 1–65535", () => {
    for (const host of [
      "localhost",
      "api.openai.com",
      "127.0.0.1",
      "a.b:1",
      "a.b:65535",
      "x-y.z0",
      `${"a".repeat(63)}.com`,
    ]) {
      assert.equal(isValidHost(host), true, host);
    }
  });

  it("rejects schemes, paths, wildcards, empty labels, bad hyphens, bad ports, upper case and unicode", () => {
    for (const host of [
      "",
      "http://a.com",
      "a.com/x",
      "*.a.com",
      "a..com",
      ".a.com",
      "a.com.",
      "-a.com",
      "a-.com",
      "a.com:0",
      "a.com:080",
      "a.com:65536",
      "a.com:",
      "user@a.com",
      "[::1]:443",
      "A.com",
      "bücher.de",
      "a com",
      "a.com\n",
      `${"a".repeat(64)}.com`,
    ]) {
      assert.equal(isValidHost(host), false, JSON.stringify(host));
    }
    assert.throws(
      () => canonicalHosts(["ok.com", "bad/host"]),
      (e) => isKeyholeError(e) && e.code === "bad_request",
    );
  });

  it("limits a host name to 253 characters before the port", () => {
    const label = "a".repeat(61);
    const name253 = [label, label, label, label, "abcde"].join(".");
    assert.equal(name253.length, 253);
    assert.equal(isValidHost(name253), true);
    assert.equal(isValidHost(`${name253}:443`), true);
    assert.equal(isValidHost(`${name253}h`), false);
  });

  it("isCanonicalHosts is true only for the canonical form", () => {
    assert.equal(isCanonicalHosts(["a.com", "b.com"]), true);
    assert.equal(isCanonicalHosts([]), true);
    for (const hosts of [
      ["b.com", "a.com"],
      ["a.com", "a.com"],
      ["A.com"],
      [" a.com"],
      ["a.com/x"],
    ]) {
      assert.equal(isCanonicalHosts(hosts), false, hosts.join(","));
    }
  });

  it("canonicalHosts is idempotent and its output is canonical", () => {
    const host = fc.constantFrom("a.com", "B.com", "b.com", "localhost:8080", " c.org", "10.0.0.1");
    fc.assert(
      fc.property(fc.array(host, { maxLength: 6 }), (hosts) => {
        const once = canonicalHosts(hosts);
        assert.deepEqual(canonicalHosts(once), once);
        assert.equal(isCanonicalHosts(once), true);
      }),
    );
  });
});

describe("grant statement KHG1", () => {
  let owner: Owner;
  let agent: Agent;
  let sealed: SealedVersion;
  let statement: GrantStatement;
  let sig: Uint8Array;

  before(async () => {
    owner = await makeOwner();
    agent = await makeAgent(owner, "agt_AAAAAAAAAAAAAAAAAAAAAA");
    sealed = await sealVersion(
      owner,
      { vaultId: "vlt_v", secretId: "sec_s", version: 2 },
      "alpha",
      utf8("v"),
      [agent],
    );
    ({ statement, sig } = must(sealed.grants, agent.agentId));
  });

  it("encodes the fields in the documented order, with LP(secret_name) after LP(secret_id)", async () => {
    const expected = concatBytes(
      lp("keyhole/v1/grant"),
      lp(statement.vaultId),
      lp(statement.secretId),
      lp(statement.secretName),
      u64(statement.version),
      lp(statement.dekId),
      lp(statement.agentId),
      statement.recipientFingerprint,
      await sha256(statement.valueEnvelope),
      await sha256(statement.wrap),
      u64(statement.issuedAt),
      u64(statement.notAfter),
      lp(statement.allowedHosts.join("\n")),
    );
    assert.deepEqual(await encodeGrantMessage(statement), expected);
  });

  it("a signed grant verifies under the owner's key and not under another owner's", async () => {
    assert.equal(await verifyGrant(owner.signing.publicKey, statement, sig), true);
    const other = await makeOwner();
    assert.equal(await verifyGrant(other.signing.publicKey, statement, sig), false);
    assert.equal(sig.length, 64);
    assert.deepEqual(await signGrant(owner.signing, statement), sig, "Ed25519 is deterministic");
  });

  it("binds the secret name: the same grant presented for another name fails", async () => {
    assert.equal(
      await verifyGrant(owner.signing.publicKey, { ...statement, secretName: "beta" }, sig),
      false,
    );
  });

  it("refuses to encode non-canonical hosts or a fingerprint that is not 16 bytes", async () => {
    const unsorted = { ...statement, allowedHosts: ["b.com", "a.com"] };
    await assert.rejects(
      encodeGrantMessage(unsorted),
      (e) => isKeyholeError(e) && e.code === "invalid_envelope",
    );
    await assert.rejects(
      encodeGrantMessage({ ...statement, recipientFingerprint: new Uint8Array(15) }),
      (e) => isKeyholeError(e) && e.code === "invalid_envelope",
    );
    assert.equal(await verifyGrant(owner.signing.publicKey, unsorted, sig), false);
  });

  it("verifyGrant is false, not an exception, for malformed keys and signatures", async () => {
    assert.equal(await verifyGrant(new Uint8Array(31), statement, sig), false);
    assert.equal(await verifyGrant(owner.signing.publicKey, statement, sig.subarray(0, 63)), false);
    assert.equal(await verifyGrant(owner.signing.publicKey, statement, new Uint8Array(64)), false);
  });

  it("host lists join with newlines, so ['a.com','b.com'] and ['a.com\\nb.com'] cannot collide", async () => {
    const two = await encodeGrantMessage({ ...statement, allowedHosts: ["a.com", "b.com"] });
    await assert.rejects(encodeGrantMessage({ ...statement, allowedHosts: ["a.com\nb.com"] }));
    assert.ok(two.length > 0);
  });
});
