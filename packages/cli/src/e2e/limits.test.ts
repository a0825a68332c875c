// SECURITY-TESTS #16 through the real executable: `agent create --cidr`, `grant add
// --max-uses` and `server --trusted-proxy`, with a real server process and the SDK as the agent.
// The server-side rules (boundaries, IPv6, X-Forwarded-For chains) are tested in detail in
// packages/server/src/limits.test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Vault } from "@keyhole/sdk";
import { type E2eContext, e2eWithServer, type ServerProcess, stopE2e } from "./harness.js";

let ctx: E2eContext;
let server: ServerProcess;

before(async () => {
  ({ ctx, server } = await e2eWithServer({
    extraArgs: ["--trusted-proxy", "192.0.2.0/24,2001:db8::1"],
    init: true,
  }));
  await ctx.ok(["secret", "set", "db"], "first value\n");
});
after(() => stopE2e(ctx, server));

/** The SDK's read of `name`: its value, or its error code. */
async function sdkRead(tokenFile: string, name: string): Promise<string> {
  const vault = new Vault({ addr: server.url, tokenFile });
  try {
    return await vault.get(name);
  } catch (error) {
    return `error:${(error as { code?: string }).code ?? "no code"}`;
  } finally {
    vault.close();
  }
}

test("agent create --cidr: a token works only from its ranges", async () => {
  const inside = join(ctx.dir, "inside.token");
  const outside = join(ctx.dir, "outside.token");
  await ctx.ok([
    "agent",
    "create",
    "inside",
    "--grant",
    "db",
    "--cidr",
    "127.0.0.0/8,::1",
    "--token-file",
    inside,
  ]);
  await ctx.ok([
    "agent",
    "create",
    "outside",
    "--grant",
    "db",
    "--cidr",
    "10.0.0.0/8",
    "--token-file",
    outside,
  ]);
  assert.equal(await sdkRead(inside, "db"), "first value");
  assert.equal(await sdkRead(outside, "db"), "error:unauthenticated");
  const show = await ctx.ok(["agent", "show", "outside"]);
  assert.match(show.stdout, /^from: +10\.0\.0\.0\/8$/m);
  const json = await ctx.ok(["agent", "list", "--json"]);
  const listed = JSON.parse(json.stdout) as { name: string; allowed_cidrs: string[] }[];
  assert.deepEqual(listed.find((a) => a.name === "inside")?.allowed_cidrs, [
    "127.0.0.0/8",
    "::1/128",
  ]);
  const audit = await ctx.ok(["audit", "--agent", "outside", "--json"]);
  assert.match(audit.stdout, /agent_source_not_allowed likely_leak/);
});

test("grant add --max-uses: exactly N reads, kept across secret set, renewed by grant add", async () => {
  const token = join(ctx.dir, "budget.token");
  await ctx.ok(["agent", "create", "budget", "--token-file", token]);
  const granted = await ctx.ok(["grant", "add", "budget", "db", "--max-uses", "2"]);
  assert.match(granted.stderr, /2 reads/);
  assert.equal(await sdkRead(token, "db"), "first value");
  assert.equal(await sdkRead(token, "db"), "first value");
  assert.equal(await sdkRead(token, "db"), "error:not_found");
  const list = await ctx.ok(["grant", "list", "--agent", "budget"]);
  assert.match(list.stdout, /0 of 2/);
  await ctx.ok(["secret", "set", "db"], "second value\n");
  assert.equal(await sdkRead(token, "db"), "error:not_found");
  await ctx.ok(["grant", "add", "budget", "db", "--max-uses", "1"]);
  assert.equal(await sdkRead(token, "db"), "second value");
  assert.equal(await sdkRead(token, "db"), "error:not_found");
});

test("bad limits are usage errors that say what is wrong", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["agent", "create", "x", "--cidr", "10.1.2.3/8"],
      /host bits are set; the network is 10\.0\.0\.0\/8/,
    ],
    [["agent", "create", "x", "--cidr", "10.0.0.0/8,"], /empty item/],
    [["agent", "create", "x", "--cidr", "example.com"], /not an IPv4 or IPv6 address/],
    [["grant", "add", "budget", "db", "--max-uses", "0"], /--max-uses must be between 1/],
    [["grant", "add", "budget", "db", "--max-uses", "two"], /--max-uses must be a whole number/],
    [["server", "--trusted-proxy", "192.0.2.1/24"], /network is 192\.0\.2\.0\/24/],
  ];
  for (const [args, message] of cases) {
    const run = await ctx.keyhole(args);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  }
});
