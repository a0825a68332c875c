// Many owner processes updating the same secret at once, through the real executable and a
// real `keyhole server` process (issue 4, "Reliability: concurrency"): every acknowledged
// version is kept exactly once, versions are gap-free, a loser exits 1 with a clear conflict
// error, and the owner's version pin in config.json ends at the newest version.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Vault } from "@keyhole/sdk";
import { type E2eContext, e2eWithServer, type ServerProcess, stopE2e } from "./harness.js";

const WRITERS = 8;
const ROUNDS = 3;
const NAME = "contended";
const RACED = "raced";
/** Every value has its own length, so a version's `size` in the history names its writer. */
const BASE_LENGTH = 16;
/** How long grant ops race secret writes. */
const RACE_MS = 8000;

let ctx: E2eContext;
let server: ServerProcess;

before(async () => {
  ({ ctx, server } = await e2eWithServer({ init: true }));
});
after(() => stopE2e(ctx, server));

/** A random printable value of exactly `length` characters. */
function randomValue(length: number): string {
  return randomBytes(length).toString("base64url").slice(0, length);
}

interface History {
  version: number;
  size: number;
}

async function history(): Promise<History[]> {
  return JSON.parse((await ctx.ok(["secret", "history", NAME, "--json"])).stdout) as History[];
}

/** The owner's version pins, read straight from config.json. */
async function pinnedVersions(): Promise<Record<string, number>> {
  const text = await readFile(join(ctx.env.KEYHOLE_HOME as string, "config.json"), "utf8");
  return (JSON.parse(text) as { versions: Record<string, number> }).versions;
}

test(`${WRITERS} concurrent \`secret set\` of one name, ${ROUNDS} rounds: no acknowledged version is lost`, async () => {
  // Version 1, written alone: its size gives the envelope's fixed overhead.
  await ctx.ok(["secret", "set", NAME], randomValue(BASE_LENGTH));
  const first = await history();
  assert.deepEqual(
    first.map((v) => v.version),
    [1],
  );
  const overhead = (first[0]?.size ?? 0) - BASE_LENGTH;
  const acknowledged = new Map<number, string>(); // size → value
  acknowledged.set(BASE_LENGTH + overhead, "(version 1)");
  let nextLength = BASE_LENGTH + 1;
  let failures = 0;

  for (let round = 0; round < ROUNDS; round++) {
    const values = Array.from({ length: WRITERS }, () => randomValue(nextLength++));
    const runs = await Promise.all(
      values.map((value) => ctx.keyhole(["secret", "set", NAME], { input: value })),
    );
    runs.forEach((run, i) => {
      const value = values[i] as string;
      if (run.code === 0) {
        assert.match(run.stderr, new RegExp(`^stored ${NAME} version \\d+ `));
        acknowledged.set(value.length + overhead, value);
        return;
      }
      failures++;
      // A loser is refused cleanly: exit 1, one `keyhole: ` line naming the conflict, no stack.
      assert.equal(run.code, 1, `writer ${i} exit ${run.code} ${run.signal}: ${run.stderr}`);
      assert.match(run.stderr, /^keyhole: the (secret|resource) changed[^\n]*\n$/);
      assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
    });

    const versions = await history();
    assert.deepEqual(
      versions.map((v) => v.version),
      Array.from({ length: versions.length }, (_, i) => i + 1),
      "versions are 1..k without gaps",
    );
    assert.equal(versions.length, acknowledged.size, "one version per acknowledged write");
    assert.deepEqual(
      versions.map((v) => v.size).sort((a, b) => a - b),
      [...acknowledged.keys()].sort((a, b) => a - b),
      "every acknowledged value is exactly one version, and no unacknowledged one is",
    );
    // The newest version is whichever writer committed last; it opens to that writer's value.
    const newest = versions[versions.length - 1] as History;
    const current = (await ctx.ok(["secret", "get", NAME])).stdout;
    assert.equal(current, acknowledged.get(newest.size));

    // Each successful process raised the pin of the version it wrote; the pins only move
    // forward, so after everyone finished the pin must be the newest version.
    const pins = Object.values(await pinnedVersions());
    assert.deepEqual(
      pins,
      [newest.version],
      "config.json pins the newest version (a lower pin is a lost update on config.json)",
    );
  }
  assert.ok(acknowledged.size > ROUNDS, "some concurrent writers succeeded");
  process.stderr.write(
    `# concurrency: ${WRITERS}x${ROUNDS} writers, ${acknowledged.size - 1} acknowledged, ${failures} refused\n`,
  );
});

const AGENTS = 6;

/** The whole config.json, for the pins of agents and grants. */
async function readPins(): Promise<{
  agents: Record<string, { name: string }>;
  grants: Record<string, Record<string, unknown>>;
}> {
  const text = await readFile(join(ctx.env.KEYHOLE_HOME as string, "config.json"), "utf8");
  return JSON.parse(text);
}

test(`${AGENTS} concurrent \`agent create\` and \`grant add\` keep every pin in config.json`, async () => {
  const names = Array.from({ length: AGENTS }, (_, i) => `racer-${i}`);
  const tokenFile = (name: string) => join(ctx.dir, `${name}.token`);
  const created = await Promise.all(
    names.map((n) => ctx.keyhole(["agent", "create", n, "--token-file", tokenFile(n)])),
  );
  for (const run of created) assert.equal(run.code, 0, run.stderr);
  const agentPins = Object.values((await readPins()).agents).map((a) => a.name);
  assert.deepEqual(
    names.filter((n) => !agentPins.includes(n)),
    [],
    "every created agent is pinned (a missing one is a lost update on config.json)",
  );

  const granted = await Promise.all(names.map((n) => ctx.keyhole(["grant", "add", n, NAME])));
  for (const run of granted) assert.equal(run.code, 0, run.stderr);
  const grants = JSON.parse((await ctx.ok(["grant", "list", "--json"])).stdout) as {
    agent_name: string;
    secret_name: string;
  }[];
  assert.equal(grants.filter((g) => g.secret_name === NAME).length, AGENTS);
  const grantPins = Object.values((await readPins()).grants);
  assert.deepEqual(
    grantPins.map((byAgent) => Object.keys(byAgent).length),
    [AGENTS],
    "every grant the server holds is pinned (a missing one is a lost update on config.json)",
  );

  // With every pin in place the next version is wrapped for all of them.
  const value = randomValue(200);
  await ctx.ok(["secret", "set", NAME], value);
  for (const name of names) {
    const vault = new Vault({ addr: server.url, tokenFile: tokenFile(name) });
    try {
      assert.equal(await vault.get(NAME), value);
    } finally {
      vault.close();
    }
  }
});

test("`grant add`/`grant rm` racing `secret set` of the same secret: writers fail only with a conflict", async () => {
  // Its own secret, so a pin lost by the test above does not fail every write here.
  await ctx.ok(["secret", "set", RACED], randomValue(32));
  await ctx.ok(["agent", "create", "toggled", "--token-file", join(ctx.dir, "toggled.token")]);
  let stop = false;
  let granted = false;
  const refused: string[] = [];
  let written = 0;
  const toggler = async () => {
    while (!stop) {
      const args = granted ? ["grant", "rm", "toggled", RACED] : ["grant", "add", "toggled", RACED];
      const run = await ctx.keyhole(args);
      assert.equal(run.code, 0, `keyhole ${args.join(" ")}: ${run.stderr}`);
      granted = !granted;
    }
  };
  const writer = async () => {
    while (!stop) {
      const run = await ctx.keyhole(["secret", "set", RACED], { input: randomValue(32) });
      if (run.code === 0) written++;
      else if (!/^keyhole: the (secret|resource) changed[^\n]*\n$/.test(run.stderr)) {
        refused.push(run.stderr.trim());
      }
    }
  };
  const load = Promise.all([toggler(), writer(), writer()]);
  await new Promise((resolve) => setTimeout(resolve, RACE_MS));
  stop = true;
  await load;
  assert.ok(written > 0);
  assert.deepEqual(refused, [], "a secret set racing a grant op is refused only as a conflict");
});

test("`audit verify` passes after the contention", async () => {
  await ctx.ok(["audit", "verify"]);
});
