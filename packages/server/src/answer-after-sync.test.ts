/**
 * "Written before the answer leaves", end to end: with the WAL's fsync held back (a sync hook on
 * the test server), an agent's fetch is not answered, and an owner's read of what that fetch
 * committed (its audit entry) is not answered either, until the sync finishes. A power cut
 * before the sync could not leave a client holding an answer whose audit entry is gone.
 * The gate's own rules are unit-tested in store/durability-gate.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startTestServer } from "./test-support/harness.js";
import type { HttpResult } from "./test-support/http.js";
import { agentGet, TestOwner } from "./test-support/owner.js";

/** Syncs that wait while `held` is true, counted. */
class HeldSyncs {
  held = false;
  started = 0;
  readonly #waiting: (() => void)[] = [];

  readonly hook = (sync: () => Promise<void>): Promise<void> => {
    this.started += 1;
    if (!this.held) return sync();
    return new Promise<void>((resolve) => this.#waiting.push(resolve)).then(sync);
  };

  release(): void {
    this.held = false;
    for (const resume of this.#waiting.splice(0)) resume();
  }
}

/** The answer if it arrives within `ms`, otherwise null (the request stays in flight). */
async function within(pending: Promise<HttpResult>, ms: number): Promise<HttpResult | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([pending, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("answers wait for the fsync", () => {
  it("holds a fetch's answer, and a read of its audit entry, until the WAL is synced", async () => {
    const syncs = new HeldSyncs();
    const t = await startTestServer({ syncHook: syncs.hook });
    try {
      const owner = await TestOwner.initialized(t);
      await owner.putSecret("api", new TextEncoder().encode("held-back"));
      const agent = await owner.createAgent("reader", ["api"]);
      const entriesBefore = (await owner.auditEntries()).length;

      syncs.held = true;
      const startedBefore = syncs.started;
      const fetch = agentGet(t.url, agent, "/v1/agent/secrets/api");
      assert.equal(await within(fetch, 300), null, "no answer before the sync");
      assert.ok(syncs.started > startedBefore, "the fetch committed and asked for a sync");
      // The committed entry is visible to the next statement, but not sent before its sync.
      const audit = owner.request("GET", `/v1/owner/audit?after=${entriesBefore}`);
      assert.equal(await within(audit, 300), null, "no read of an unsynced commit");

      syncs.release();
      assert.equal((await fetch).status, 200);
      const listed = await audit;
      assert.equal(listed.status, 200, listed.text);
      assert.match(listed.text, /secret\.read/);
    } finally {
      syncs.release();
      await t.close();
    }
  });
});
