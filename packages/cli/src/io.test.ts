import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import {
  editHiddenLine,
  MAX_VALUE_BYTES,
  promptHidden,
  readAllInput,
  readSecretValue,
} from "./io.js";
import { memoryIo } from "./test-support/memory-io.js";

async function read(input: string | Buffer, max = 1024): Promise<string> {
  return (await readAllInput(Readable.from([Buffer.from(input)]), max)).toString("utf8");
}

test("stdin loses exactly one trailing newline", async () => {
  assert.equal(await read("value\n"), "value");
  assert.equal(await read("value\r\n"), "value");
  assert.equal(await read("value\n\n"), "value\n");
  assert.equal(await read("value"), "value");
  assert.equal(await read("  spaced value  \n"), "  spaced value  ");
  assert.equal(await read("\n"), "");
});

test("stdin is read as bytes, so binary values survive (and input chunks are zeroed)", async () => {
  const bytes = [0, 255, 10, 13, 128];
  const read = await readAllInput(Readable.from([Buffer.from(bytes)]), 100);
  assert.deepEqual([...read], bytes);
});

test("stdin larger than the limit is refused", async () => {
  await assert.rejects(read("x".repeat(11), 10), /larger than 10 bytes/);
  assert.equal(await read(`${"x".repeat(10)}\n`, 10), "x".repeat(10));
});

test("a value on a non-TTY stdin is read from stdin, not prompted", async () => {
  const io = memoryIo({ stdin: "s3cret\n", keystrokes: ["typed\r"] });
  assert.equal((await readSecretValue(io, "x")).toString(), "s3cret");
  assert.equal(io.terminalOutput(), "");
});

test("a value on a TTY is asked on a muted prompt that never echoes it", async () => {
  const io = memoryIo({ stdinIsTTY: true, keystrokes: ["typed-value\r"] });
  assert.equal((await readSecretValue(io, "api-key")).toString(), "typed-value");
  assert.equal(io.terminalOutput(), "Value for api-key: \n");
});

test("the line editor handles backspace, Ctrl-U, Enter and Ctrl-C", () => {
  const start = { text: "", done: false, cancelled: false };
  assert.deepEqual(editHiddenLine(start, "abc\u007fd\r"), {
    text: "abd",
    done: true,
    cancelled: false,
  });
  assert.deepEqual(editHiddenLine(start, "abc\u0015xy\n"), {
    text: "xy",
    done: true,
    cancelled: false,
  });
  assert.deepEqual(editHiddenLine(start, "abc\u0003"), { text: "", done: true, cancelled: true });
  assert.deepEqual(editHiddenLine(start, "\u0004"), { text: "", done: true, cancelled: true });
  assert.deepEqual(editHiddenLine(start, "\u001b[Aé"), {
    text: "[Aé",
    done: false,
    cancelled: false,
  });
  const partial = editHiddenLine(start, "pa");
  assert.deepEqual(editHiddenLine(partial, "ss\r"), { text: "pass", done: true, cancelled: false });
});

test("backspace removes a whole character, not half of a surrogate pair", () => {
  const state = editHiddenLine({ text: "", done: false, cancelled: false }, "a😀\u007f\r");
  assert.equal(state.text, "a");
});

test("a cancelled prompt is a usage error", async () => {
  const io = memoryIo({ stdinIsTTY: true, keystrokes: ["ab\u0003"] });
  await assert.rejects(promptHidden(io, "Q: ", "value", "X"), /cancelled/);
});

test("without a terminal the prompt fails with a clear message naming the variable", async () => {
  const io = memoryIo();
  await assert.rejects(
    promptHidden(io, "Owner passphrase: ", "passphrase", "KEYHOLE_PASSPHRASE"),
    (error: { code?: string; message?: string }) =>
      error.code === "config_error" && /set KEYHOLE_PASSPHRASE/.test(error.message ?? ""),
  );
});

test("the value limit stays well inside the server's 256 KiB body limit", () => {
  assert.ok(MAX_VALUE_BYTES * (4 / 3) < 200 * 1024);
});
