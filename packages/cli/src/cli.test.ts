import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { KeyholeError } from "@keyhole/core";
import { runCli } from "./cli.js";
import { memoryIo } from "./test-support/memory-io.js";

test("no command is a usage error: exit 2, one line", async () => {
  const io = memoryIo();
  assert.equal(await runCli([], io), 2);
  assert.equal(io.err(), "keyhole: missing command (see keyhole --help)\n");
  assert.equal(io.out(), "");
});

test("--help, -h and help print the usage on stdout", async () => {
  for (const flag of ["--help", "-h", "help"]) {
    const io = memoryIo();
    assert.equal(await runCli([flag], io), 0);
    assert.match(io.out(), /^Usage: keyhole <command>/);
    assert.match(io.out(), /Exit codes: 0 ok, 1 failure, 2 usage error/);
  }
});

test("a prototype key is not a command", async () => {
  const io = memoryIo();
  assert.equal(await runCli(["constructor"], io), 2);
  assert.match(io.err(), /unknown command 'constructor'/);
});

function throwingIo(error: unknown) {
  const io = memoryIo();
  const stdout = new Writable({
    write: () => {
      throw error;
    },
  });
  return { ...io, stdout };
}

test("an unexpected exception prints `internal error (<code>)`, never its message or stack", async () => {
  const error = Object.assign(new Error("secret-bearing message"), { code: "EBADF" });
  const io = throwingIo(error);
  assert.equal(await runCli(["--help"], io), 1);
  assert.equal(io.err(), "keyhole: internal error (EBADF)\n");
  const plain = throwingIo(new TypeError("x is not a function"));
  assert.equal(await runCli(["--help"], plain), 1);
  assert.equal(plain.err(), "keyhole: internal error (TypeError)\n");
});

test("KeyholeErrors print their message: usage exits 2, anything else 1", async () => {
  const usage = throwingIo(new KeyholeError("usage", "bad flag"));
  assert.equal(await runCli(["--help"], usage), 2);
  assert.equal(usage.err(), "keyhole: bad flag\n");
  const other = throwingIo(new KeyholeError("network_error"));
  assert.equal(await runCli(["--help"], other), 1);
  assert.equal(other.err(), "keyhole: could not reach the Keyhole server\n");
});

test("error messages are stripped of terminal control characters", async () => {
  const io = throwingIo(new KeyholeError("conflict", "name \u001b[31mred"));
  assert.equal(await runCli(["--help"], io), 1);
  assert.equal(io.err(), "keyhole: name ?[31mred\n");
});
