// SECURITY-TESTS #3, property part: random agents × secrets × grant changes against the real
// server (in process, real SQLite file, real HTTP on 127.0.0.1) driven by the real owner CLI
// commands; after every step, every agent tries every secret through the real SDK. A fetch
// succeeds if and only if the model says the agent is granted that secret, and then it returns
// the secret's latest value.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { Vault } from "@keyhole/sdk";
import { type RunningServer, startServer } from "@keyhole/server";
import fc from "fast-check";
import { runCli } from "../cli.js";
import { memoryIo } from "../test-support/memory-io.js";

let dir: string;
let server: RunningServer;
let env: Record<string, string>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyhole-isolation-"));
  server = await startServer({ dataDir: join(dir, "data"), port: 0, logLevel: "silent" });
  env = {
    KEYHOLE_HOME: join(dir, "owner"),
    KEYHOLE_ADDR: server.url,
    KEYHOLE_PASSPHRASE: "isolation property passphrase",
    KEYHOLE_TEST: "1",
    KEYHOLE_TEST_ARGON2_FAST: "1",
  };
  await keyhole(["init", "--bootstrap-code", server.bootstrapCode ?? ""]);
});

after(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function keyhole(argv: string[], stdin?: string): Promise<void> {
  const io = memoryIo({ cwd: dir, env, ...(stdin === undefined ? {} : { stdin }) });
  const code = await runCli(argv, io);
  assert.equal(code, 0, `keyhole ${argv.join(" ")}: ${io.err()}`);
}

type Step =
  | { kind: "grant"; agent: number; secret: number }
  | { kind: "ungrant"; agent: number; secret: number }
  | { kind: "update"; secret: number }
  | { kind: "revoke"; agent: number };

const AGENTS = 3;
const SECRETS = 3;

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("grant" as const),
    agent: fc.nat(AGENTS - 1),
    secret: fc.nat(SECRETS - 1),
  }),
  fc.record({
    kind: fc.constant("ungrant" as const),
    agent: fc.nat(AGENTS - 1),
    secret: fc.nat(SECRETS - 1),
  }),
  fc.record({ kind: fc.constant("update" as const), secret: fc.nat(SECRETS - 1) }),
  fc.record({ kind: fc.constant("revoke" as const), agent: fc.nat(AGENTS - 1) }),
);

interface Scenario {
  initial: boolean[][];
  steps: Step[];
}

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  initial: fc.array(fc.array(fc.boolean(), { minLength: SECRETS, maxLength: SECRETS }), {
    minLength: AGENTS,
    maxLength: AGENTS,
  }),
  steps: fc.array(stepArbitrary, { maxLength: 4 }),
});

let run = 0;

/** One scenario under fresh names, so runs share the server but not their secrets or agents. */
async function checkScenario(scenario: Scenario): Promise<void> {
  run++;
  const secretName = (s: number) => `r${run}-secret-${s}`;
  const agentName = (a: number) => `r${run}-agent-${a}`;
  const values = new Map<number, string>();
  const granted = scenario.initial.map((row) => [...row]);
  const revoked = new Set<number>();
  const vaults: Vault[] = [];

  for (let s = 0; s < SECRETS; s++) {
    values.set(s, `value-${run}-${s}-1`);
    await keyhole(["secret", "set", secretName(s)], values.get(s));
  }
  for (let a = 0; a < AGENTS; a++) {
    const grants = (granted[a] ?? []).flatMap((g, s) => (g ? [secretName(s)] : []));
    const tokenFile = join(dir, `${agentName(a)}.token`);
    const grantArgs = grants.length > 0 ? ["--grant", grants.join(",")] : [];
    await keyhole(["agent", "create", agentName(a), ...grantArgs, "--token-file", tokenFile]);
    vaults.push(new Vault({ addr: server.url, token: (await readFile(tokenFile, "utf8")).trim() }));
  }

  const checkAll = async (when: string) => {
    for (let a = 0; a < AGENTS; a++) {
      for (let s = 0; s < SECRETS; s++) {
        const expected = !revoked.has(a) && granted[a]?.[s] === true;
        const got = await (vaults[a] as Vault).get(secretName(s)).then(
          (value) => ({ value }),
          (error: unknown) => ({ code: isKeyholeError(error) ? error.code : String(error) }),
        );
        if (expected) {
          assert.deepEqual(got, { value: values.get(s) }, `${when}: agent ${a} reads secret ${s}`);
        } else {
          assert.ok("code" in got, `${when}: agent ${a} must not read secret ${s}`);
          assert.ok(
            // A revoked token that keeps trying is soon rate-limited: that is a refusal too.
            ["not_found", "unauthenticated", "rate_limited"].includes(got.code),
            `${when}: agent ${a} secret ${s}: ${got.code}`,
          );
        }
      }
    }
  };

  await checkAll("after set-up");
  for (const [i, step] of scenario.steps.entries()) {
    if (step.kind === "grant" && !revoked.has(step.agent)) {
      await keyhole(["grant", "add", agentName(step.agent), secretName(step.secret)]);
      (granted[step.agent] as boolean[])[step.secret] = true;
    } else if (
      step.kind === "ungrant" &&
      granted[step.agent]?.[step.secret] &&
      !revoked.has(step.agent)
    ) {
      await keyhole(["grant", "rm", agentName(step.agent), secretName(step.secret)]);
      (granted[step.agent] as boolean[])[step.secret] = false;
    } else if (step.kind === "update") {
      const next = `value-${run}-${step.secret}-${i + 2}`;
      await keyhole(["secret", "set", secretName(step.secret)], next);
      values.set(step.secret, next);
    } else if (step.kind === "revoke" && !revoked.has(step.agent)) {
      await keyhole(["agent", "revoke", agentName(step.agent)]);
      revoked.add(step.agent);
    } else {
      continue;
    }
    await checkAll(`after step ${i} (${JSON.stringify(step)})`);
  }
  for (const vault of vaults) vault.close();
}

test("a fetch succeeds if and only if the agent is granted the secret (random grants and changes)", async () => {
  await fc.assert(fc.asyncProperty(scenarioArbitrary, checkScenario), {
    numRuns: Number(process.env.KEYHOLE_PROPERTY_RUNS ?? 12),
    endOnFailure: true,
  });
});
