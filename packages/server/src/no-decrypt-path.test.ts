import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

// packages/server/dist/no-decrypt-path.test.js → packages/server/src (and dist, the shipped code).
const SRC = fileURLToPath(new URL("../src", import.meta.url));
const DIST = fileURLToPath(new URL(".", import.meta.url));

/** Core's decrypt path: the server holds ciphertext and must never be able to open it. */
const FORBIDDEN = [
  "openValue",
  "unwrapDek",
  "hpkeOpen",
  "deriveRecipientKeyPair",
  "AgentToken",
  "parseToken",
  "deriveKeys",
];

/** Server code that runs in production: everything but tests and test support. */
function productionFiles(dir: string, extensions: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry !== "test-support") out.push(...productionFiles(path, extensions));
    } else if (
      extensions.some((e) => entry.endsWith(e)) &&
      !/\.test\.(ts|js)$/.test(entry) &&
      !entry.endsWith(".d.ts")
    ) {
      out.push(path);
    }
  }
  return out;
}

describe("the server cannot decrypt (SECURITY-TESTS #2)", () => {
  const files = [...productionFiles(SRC, [".ts", ".js"]), ...productionFiles(DIST, [".js"])];

  it("finds the server's source and build", () => {
    assert.ok(files.some((f) => f.endsWith(join("src", "app.ts"))));
    assert.ok(files.some((f) => f.endsWith(join("dist", "app.js"))));
    assert.ok(files.length > 40);
  });

  it("no production file names a decrypt function of core", () => {
    const hits: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      for (const name of FORBIDDEN) {
        if (new RegExp(`\\b${name}\\b`).test(text)) hits.push(`${relative(SRC, file)}: ${name}`);
      }
    }
    assert.deepEqual(hits, []);
  });

  it("no production file imports the test support (which does decrypt)", () => {
    const hits = files.filter((file) =>
      /from "[^"]*test-support\//.test(readFileSync(file, "utf8")),
    );
    assert.deepEqual(hits, []);
  });

  it("the check itself would catch a decrypt import", () => {
    const sample = 'import { openValue, sealValue } from "@keyhole/core";';
    assert.ok(FORBIDDEN.some((name) => new RegExp(`\\b${name}\\b`).test(sample)));
    assert.equal(/\bparseToken\b/.test("parseTokenId(x)"), false);
  });
});
