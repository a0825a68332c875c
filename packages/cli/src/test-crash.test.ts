import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { crashPoint } from "./test-crash.js";

const MODULE = new URL("./test-crash.js", import.meta.url).href;

/** Runs `crashPoint(env, "rotate:answered")` in a child process; returns how it ended. */
function runCrashPoint(env: Record<string, string>): NodeJS.Signals | number | null {
  const script =
    `const { crashPoint } = await import(${JSON.stringify(MODULE)});` +
    `crashPoint(${JSON.stringify(env)}, "rotate:answered");`;
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script]);
  return child.signal ?? child.status;
}

test("a crash point kills the process only with KEYHOLE_TEST=1 and its own step named", () => {
  assert.equal(
    runCrashPoint({ KEYHOLE_TEST: "1", KEYHOLE_TEST_CRASH_AT: "rotate:answered" }),
    "SIGKILL",
  );
  assert.equal(runCrashPoint({ KEYHOLE_TEST_CRASH_AT: "rotate:answered" }), 0);
  assert.equal(runCrashPoint({ KEYHOLE_TEST: "1", KEYHOLE_TEST_CRASH_AT: "rotate:pinned" }), 0);
  assert.equal(runCrashPoint({ KEYHOLE_TEST: "1" }), 0);
});

test("a crash point without a test asking for it returns", () => {
  crashPoint({ KEYHOLE_TEST: "", KEYHOLE_TEST_CRASH_AT: "rotate:answered" }, "rotate:answered");
});
