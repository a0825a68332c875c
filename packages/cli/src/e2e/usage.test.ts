// The real executable's help texts, usage errors and exit codes (no server needed).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type E2eContext, e2eContext } from "./harness.js";

let ctx: E2eContext;
before(async () => {
  ctx = await e2eContext();
  // Nothing listens here: commands that reach for the server fail with network_error.
  ctx.env.KEYHOLE_ADDR = "http://127.0.0.1:9";
});
after(async () => {
  await ctx.cleanup();
});

const HELP: [string[], RegExp][] = [
  [[], /^Usage: keyhole <command>/],
  [["server"], /^Usage: keyhole server \[--data-dir DIR\]/],
  [["init"], /^Usage: keyhole init \[--addr URL\] \[--bootstrap-code CODE\]/],
  [["secret"], /^Usage: keyhole secret <command>/],
  [["secret", "set"], /^Usage: keyhole secret set NAME/],
  [["secret", "get"], /^Usage: keyhole secret get NAME/],
  [["secret", "list"], /^Usage: keyhole secret list \[--json\]/],
  [["secret", "history"], /^Usage: keyhole secret history NAME \[--json\]/],
  [["secret", "rm"], /^Usage: keyhole secret rm NAME/],
  [["agent"], /^Usage: keyhole agent <command>/],
  [
    ["agent", "create"],
    /^Usage: keyhole agent create NAME \[--grant a,b\] \[--expires 30d\] \[--cidr RANGES\]/,
  ],
  [["agent", "list"], /^Usage: keyhole agent list \[--json\]/],
  [["agent", "show"], /^Usage: keyhole agent show NAME/],
  [["agent", "rotate"], /^Usage: keyhole agent rotate NAME \[--token-file PATH\]/],
  [["agent", "revoke"], /^Usage: keyhole agent revoke NAME/],
  [["grant"], /^Usage: keyhole grant <command>/],
  [["grant", "add"], /^Usage: keyhole grant add AGENT SECRET \[--expires 1h\] \[--hosts h1,h2\]/],
  [["grant", "rm"], /^Usage: keyhole grant rm AGENT SECRET/],
  [["grant", "list"], /^Usage: keyhole grant list \[--agent A\] \[--json\]/],
  [
    ["audit"],
    /^Usage: keyhole audit \[--agent A\] \[--secret S\] \[--since 1h\] \[--limit N\] \[--follow\]/,
  ],
  [["audit", "verify"], /^Usage: keyhole audit verify/],
  [["dev"], /^Usage: keyhole dev \[--port 8250\] \[--dir .keyhole-dev\]/],
  [["migrate"], /^Usage: keyhole migrate --from sqlite:PATH \[--to URL\] \[--to-schema NAME\]/],
];

test("every command and subcommand prints its usage on --help and -h, exit 0", async () => {
  await Promise.all(
    HELP.map(async ([args, pattern]) => {
      for (const flag of ["--help", "-h"]) {
        const run = await ctx.keyhole([...args, flag]);
        assert.equal(run.code, 0, `${args.join(" ")} ${flag}: ${run.stderr}`);
        assert.match(run.stdout, pattern, args.join(" "));
        assert.equal(run.stderr, "", args.join(" "));
      }
    }),
  );
});

test("every listing documents --json", async () => {
  for (const args of [
    ["secret", "list"],
    ["secret", "history"],
    ["agent", "list"],
    ["agent", "show"],
    ["grant", "list"],
    ["audit"],
  ]) {
    const run = await ctx.keyhole([...args, "--help"]);
    assert.match(run.stdout, /--json/, args.join(" "));
  }
});

const USAGE_ERRORS: [string[], RegExp][] = [
  [[], /^keyhole: missing command \(see keyhole --help\)\n$/],
  [["frobnicate"], /^keyhole: unknown command 'frobnicate'/],
  [["secret"], /^keyhole: missing command \(see keyhole secret --help\)\n$/],
  [["secret", "nope"], /^keyhole: unknown command 'nope'/],
  [["secret", "get"], /^keyhole: missing NAME\n$/],
  [["secret", "set", "x", "value-on-argv"], /never from the command line/],
  [["secret", "list", "--bogus"], /^keyhole: unknown option '--bogus'\n$/],
  [["secret", "get", "bad/name"], /^keyhole: invalid secret name 'bad\/name'/],
  [["agent", "create", "bot", "--expires", "10y"], /^keyhole: invalid --expires '10y'/],
  [["agent", "create", "bot", "--grant"], /^keyhole: option '--grant' needs a value\n$/],
  [["grant", "add", "bot"], /^keyhole: missing SECRET\n$/],
  [["grant", "add", "bot", "s", "--hosts", "http://x/"], /--hosts must list host/],
  [["audit", "--limit", "0"], /--limit must be between 1 and 100000/],
  [["audit", "--since", "yesterday"], /invalid --since/],
  [["server", "--port", "99999"], /--port must be between 0 and 65535/],
  [["server", "--tls-cert", "c.pem"], /--tls-cert and --tls-key go together/],
  [["dev", "--port", "x"], /--port must be a whole number/],
];

test("usage errors exit 2 with one line on stderr and nothing on stdout", async () => {
  await Promise.all(
    USAGE_ERRORS.map(async ([args, pattern]) => {
      const run = await ctx.keyhole(args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, pattern, args.join(" "));
      assert.equal(run.stderr.split("\n").length, 2, `one line: ${run.stderr}`);
      assert.equal(run.stdout, "");
    }),
  );
});

test("failures exit 1 with one clear line and never a stack trace", async () => {
  const noOwner = await ctx.keyhole(["secret", "list"]);
  assert.equal(noOwner.code, 1);
  assert.match(noOwner.stderr, /^keyhole: no owner in .*; run `keyhole init`\n$/);
  const unreachable = await ctx.keyhole(["init", "--bootstrap-code", "x"]);
  assert.equal(unreachable.code, 1);
  assert.equal(
    unreachable.stderr,
    "keyhole: could not reach the Keyhole server at http://127.0.0.1:9\n",
  );
  const insecure = await ctx.keyhole(["init"], {
    env: { KEYHOLE_ADDR: "http://vault.example.com" },
  });
  assert.equal(insecure.code, 1);
  assert.match(insecure.stderr, /^keyhole: refusing plain http:\/\/ to a non-loopback address/);
  for (const run of [noOwner, unreachable, insecure]) assert.doesNotMatch(run.stderr, /\n\s+at /);
});

test("--version prints the version", async () => {
  const run = await ctx.keyhole(["--version"]);
  assert.equal(run.code, 0);
  assert.equal(run.stdout, "0.1.0\n");
});
