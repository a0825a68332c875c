import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  checkName,
  parseCommandArgs,
  parseDuration,
  parseInteger,
  parseList,
  parseNameList,
  runSubcommand,
} from "./args.js";
import { memoryIo } from "./test-support/memory-io.js";

function usage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: { code?: string; message?: string }) => {
    assert.equal(error.code, "usage");
    assert.match(error.message ?? "", pattern);
    return true;
  });
}

test("durations accept 45s, 15m, 1h and 30d exactly", () => {
  assert.equal(parseDuration("45s"), 45_000);
  assert.equal(parseDuration("15m"), 900_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("30d"), 2_592_000_000);
});

test("durations are strict: no zero, sign, space, fraction, case, combined or missing unit", () => {
  for (const text of [
    "",
    "0s",
    "01h",
    "-1h",
    "+1h",
    " 1h",
    "1h ",
    "1.5h",
    "1H",
    "1h30m",
    "h",
    "10",
    "1w",
    "1e3s",
    "１h",
  ]) {
    usage(() => parseDuration(text, "--expires"), /invalid --expires/);
  }
  usage(() => parseDuration("3651d"), /longer than 3650d/);
});

test("every well-formed duration is the count times its unit", () => {
  const units = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3650 }),
      fc.constantFrom("s", "m", "h", "d"),
      (n, unit) => {
        assert.equal(parseDuration(`${n}${unit}`), n * units[unit as keyof typeof units]);
      },
    ),
  );
});

test("anything else is a usage error, never a number", () => {
  fc.assert(
    fc.property(fc.string(), (text) => {
      fc.pre(!/^[1-9][0-9]{0,6}[smhd]$/.test(text));
      assert.throws(() => parseDuration(text));
    }),
  );
});

test("unknown options and missing values are one short usage line", () => {
  usage(() => parseCommandArgs(["--nope"], {}), /^unknown option '--nope'$/);
  usage(() => parseCommandArgs(["-x"], {}), /^unknown option '-x'$/);
  usage(
    () => parseCommandArgs(["--addr"], { addr: { type: "string" } }),
    /^option '--addr' needs a value$/,
  );
  usage(
    () => parseCommandArgs(["--json=1"], { json: { type: "boolean" } }),
    /does not take a value/,
  );
});

test("an option given twice is refused unless it is declared repeatable", () => {
  const options = { cidr: { type: "string" }, env: { type: "string", multiple: true } } as const;
  usage(
    () => parseCommandArgs(["--cidr", "10.0.0.0/8", "--cidr=::1"], options),
    /^option '--cidr' given more than once$/,
  );
  usage(() => parseCommandArgs(["-h", "--help"], {}), /given more than once/);
  const parsed = parseCommandArgs(["--env", "A", "--env", "B", "--cidr", "::1"], options);
  assert.deepEqual(parsed.values.env, ["A", "B"]);
});

test("positional arguments are counted and named", () => {
  usage(() => parseCommandArgs([], {}, ["NAME"]), /^missing NAME$/);
  usage(() => parseCommandArgs(["a"], {}, ["AGENT", "SECRET"]), /^missing SECRET$/);
  usage(() => parseCommandArgs(["a", "b"], {}, ["NAME"]), /^unexpected argument 'b'$/);
  const parsed = parseCommandArgs(["a", "--json"], { json: { type: "boolean" } }, ["NAME"]);
  assert.deepEqual(parsed.positionals, ["a"]);
  assert.equal(parsed.values.json, true);
});

test("--help wins over missing positionals", () => {
  assert.equal(parseCommandArgs(["--help"], {}, ["NAME"]).help, true);
  assert.equal(parseCommandArgs(["-h"], {}, ["NAME"]).help, true);
});

test("user input echoed in errors is stripped of control characters", () => {
  usage(
    () => parseCommandArgs(["a", "\u001b[31mred"], {}, ["NAME"]),
    /unexpected argument '\?\[31mred'/,
  );
});

test("name lists reject empty items, invalid names and duplicates", () => {
  assert.deepEqual(parseNameList("a,b.c,d_e-f", "--grant"), ["a", "b.c", "d_e-f"]);
  usage(() => parseNameList("a,,b", "--grant"), /invalid --grant/);
  usage(() => parseNameList("a,a", "--grant"), /twice/);
  usage(() => parseNameList("-a", "--grant"), /invalid --grant/);
  usage(() => parseList("a,", "--hosts"), /empty item/);
});

test("names follow the contract's pattern", () => {
  assert.equal(checkName("openai-api-key", "secret name"), "openai-api-key");
  for (const bad of ["", ".x", "a/b", "a b", "x".repeat(129), "ä"]) {
    usage(() => checkName(bad, "secret name"), /invalid secret name/);
  }
});

test("integers are whole numbers within bounds", () => {
  assert.equal(parseInteger("0", "--port", 0, 65535), 0);
  usage(() => parseInteger("65536", "--port", 0, 65535), /between 0 and 65535/);
  usage(() => parseInteger("1e3", "--limit", 1, 10), /whole number/);
  usage(() => parseInteger("-1", "--limit", 1, 10), /whole number/);
});

test("subcommand dispatch: help, missing and unknown", async () => {
  const io = memoryIo();
  assert.equal(await runSubcommand(["--help"], io, "demo", "USAGE\n", {}), 0);
  assert.equal(io.out(), "USAGE\n");
  await assert.rejects(runSubcommand([], io, "demo", "", {}), /missing command/);
  await assert.rejects(
    runSubcommand(["toString"], io, "demo", "", {}),
    /unknown command 'toString'/,
  );
});
