import assert from "node:assert/strict";
import { test } from "node:test";
import { formatSize, formatTable, formatTime, sanitize } from "./format.js";

test("terminal escapes, C1 controls and bidi overrides from the server are neutralised", () => {
  assert.equal(sanitize("ok\u001b[2J\u009b1m\u202eevil\n"), "ok?[2J?1m?evil?");
});

test("tables align columns under upper-case headers without trailing spaces", () => {
  const table = formatTable(
    ["name", "v"],
    [
      ["a", "1"],
      ["longer", "22"],
    ],
  );
  assert.equal(table, "NAME    V\na       1\nlonger  22\n");
});

test("an empty table prints only its header", () => {
  assert.equal(formatTable(["name", "version"], []), "NAME  VERSION\n");
});

test("table cells are sanitised", () => {
  assert.ok(!formatTable(["x"], [["\u001b]0;title\u0007"]]).includes("\u001b"));
});

test("times are UTC to the second, and absent times are a dash", () => {
  assert.equal(formatTime(Date.UTC(2026, 2, 10, 14, 2, 11, 999)), "2026-03-10 14:02:11Z");
  assert.equal(formatTime(null), "-");
  assert.equal(formatTime(0), "-");
});

test("sizes use binary units", () => {
  assert.equal(formatSize(12), "12 B");
  assert.equal(formatSize(2048), "2.0 KiB");
  assert.equal(formatSize(3 * 1024 * 1024), "3.0 MiB");
});
