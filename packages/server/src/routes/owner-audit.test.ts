import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type AuditEntryView, type CheckpointView, decodeBase64url } from "@keyhole/core";
import { verifyAuditChain, verifyCheckpoint } from "../audit/verify.js";
import { startTestServer, type TestServer } from "../test-support/harness.js";
import { canary, fetchAndOpen, TestOwner } from "../test-support/owner.js";

interface Page {
  entries: AuditEntryView[];
  next: number | null;
}

describe("owner routes: audit", () => {
  let t: TestServer;
  let owner: TestOwner;

  before(async () => {
    t = await startTestServer();
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    await owner.putSecret("api", canary());
    const agent = await owner.createAgent("ci", ["db"]);
    t.clock.advance(1000);
    await fetchAndOpen(t.url, agent, "db");
    await fetchAndOpen(t.url, agent, "api");
  });
  after(() => t.close());

  async function page(query = ""): Promise<Page> {
    const res = await owner.request("GET", `/v1/owner/audit${query}`);
    assert.equal(res.status, 200, res.text);
    return res.json as Page;
  }

  it("lists entries in seq order with every field", async () => {
    const { entries, next } = await page();
    assert.equal(next, null);
    assert.deepEqual(
      entries.map((e) => [e.seq, e.action, e.result]),
      [
        [1, "vault.init", "ok"],
        // The owner client reads a secret before it writes a version (like the CLI).
        [2, "secret.owner_read", "not_found"],
        [3, "secret.write", "ok"],
        [4, "secret.owner_read", "not_found"],
        [5, "secret.write", "ok"],
        [6, "secret.owner_read", "ok"],
        [7, "agent.create", "ok"],
        [8, "secret.read", "ok"],
        [9, "secret.read", "denied"],
      ],
    );
    const read = entries[7];
    assert.equal(read?.actor_type, "agent");
    assert.equal(read?.client_ip, "127.0.0.1");
    assert.match(read?.request_id ?? "", /^[A-Za-z0-9_-]{16}$/);
    assert.equal(read?.secret_version, 1);
  });

  it("pages with after and limit, and says where to continue", async () => {
    const first = await page("?limit=2");
    assert.deepEqual(
      first.entries.map((e) => e.seq),
      [1, 2],
    );
    assert.equal(first.next, 2);
    const second = await page(`?after=${first.next}&limit=7`);
    assert.deepEqual(
      second.entries.map((e) => e.seq),
      [3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(second.next, null);
  });

  it("filters by agent name, secret name and time", async () => {
    const byAgent = await page("?agent=ci");
    assert.deepEqual(
      byAgent.entries.map((e) => e.seq),
      [7, 8, 9],
    );
    const bySecret = await page("?secret=db");
    assert.deepEqual(
      bySecret.entries.map((e) => e.seq),
      [3, 6, 8],
    );
    const since = await page(`?since=${t.clock.now()}`);
    assert.deepEqual(
      since.entries.map((e) => e.seq),
      [8, 9],
    );
    assert.deepEqual((await page("?agent=nobody")).entries, []);
  });

  it("refuses malformed query parameters with 400", async () => {
    for (const q of [
      "?limit=0",
      "?limit=1001",
      "?after=-1",
      "?after=1.5",
      "?since=x",
      "?agent=%",
      "?foo=1",
      "?limit=1&limit=2",
      "?agent=-x",
    ]) {
      assert.equal((await owner.request("GET", `/v1/owner/audit${q}`)).status, 400, q);
    }
  });

  it("is not itself audited", async () => {
    const before = (await page()).entries.length;
    await page();
    await owner.request("GET", "/v1/owner/audit/checkpoint");
    assert.equal((await page()).entries.length, before);
  });

  it("GET /checkpoint signs the chain head the entries recompute to", async () => {
    const res = await owner.request("GET", "/v1/owner/audit/checkpoint");
    assert.equal(res.status, 200);
    const checkpoint = res.json as CheckpointView;
    const info = (await owner.request("GET", "/v1/info")).json as { audit_pk: string };
    assert.equal(checkpoint.audit_pk, info.audit_pk);
    assert.equal(checkpoint.log_id, owner.vaultId);
    assert.equal(verifyCheckpoint(checkpoint, decodeBase64url(info.audit_pk)), true);
    const chain = verifyAuditChain((await page()).entries);
    assert.ok(chain.ok);
    assert.equal(chain.size, checkpoint.size);
    assert.deepEqual(chain.head, decodeBase64url(checkpoint.head));
    assert.equal(
      verifyCheckpoint(
        { ...checkpoint, size: checkpoint.size - 1 },
        decodeBase64url(info.audit_pk),
      ),
      false,
    );
  });
});
