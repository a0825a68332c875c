/**
 * The package's shape: a runtime-neutral root entry (STYLE.md habit 7), the public contract of
 * index.ts, and the one-dependency rule (DESIGN.md §2).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const dist = dirname(fileURLToPath(import.meta.url));
const packageJson = JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8"));

// Static `import … from "x"`, `export … from "x"` and bare `import "x"` in tsc's ESM output.
const STATIC_IMPORT = /^\s*(?:import|export)\b(?:[^;'"]*?\bfrom)?\s*["']([^"']+)["']/gm;

function staticImports(file: string): string[] {
  return [...readFileSync(file, "utf8").matchAll(STATIC_IMPORT)].map((m) => m[1] as string);
}

/** Every file reachable from `entry` by static imports, through @keyhole/* packages. */
function staticGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (graph.has(file)) continue;
    const imports = staticImports(file);
    graph.set(file, imports);
    for (const spec of imports) {
      if (spec.startsWith(".")) queue.push(resolve(dirname(file), spec));
      else if (spec.startsWith("@keyhole/")) queue.push(createRequire(file).resolve(spec));
    }
  }
  return graph;
}

test("the import scanner sees the static node: imports of node.js (so it can fail)", () => {
  assert.ok(staticImports(join(dist, "node.js")).some((s) => s.startsWith("node:")));
});

test("the compiled root entry reaches no node: module through static imports", () => {
  const graph = staticGraph(join(dist, "index.js"));
  assert.ok(graph.has(join(dist, "vault.js")), "the walk follows relative imports");
  const core = createRequire(join(dist, "index.js")).resolve("@keyhole/core");
  assert.ok(graph.has(core), "and into @keyhole/core");
  for (const [file, imports] of graph) {
    for (const spec of imports) {
      assert.ok(!spec.startsWith("node:"), `${file} imports ${spec}`);
      assert.ok(
        !["fs", "http", "https", "net", "os", "path", "crypto"].includes(spec),
        `${file} imports ${spec}`,
      );
    }
  }
});

test("the Vault loads the Node parts through a dynamic import only", () => {
  const source = readFileSync(join(dist, "vault.js"), "utf8");
  assert.match(source, /import\(["']\.\/node\.js["']\)/);
  assert.ok(!staticImports(join(dist, "vault.js")).includes("./node.js"));
});

test("the root entry exports exactly the public contract", async () => {
  const root = await import("./index.js");
  assert.deepEqual(Object.keys(root).sort(), ["KeyholeError", "Vault", "isKeyholeError"]);
  const core = await import("@keyhole/core");
  assert.equal(root.KeyholeError, core.KeyholeError, "one error class, re-exported from core");
});

test("the package exports . and ./node, and both resolve by name", async () => {
  assert.deepEqual(Object.keys(packageJson.exports).sort(), [".", "./node", "./package.json"]);
  // By name, as a user would (a variable keeps tsc from resolving the package to itself).
  const name = packageJson.name as string;
  const root = await import(name);
  const node = await import(`${name}/node`);
  assert.equal(typeof root.Vault, "function");
  assert.equal(typeof node.readTokenFile, "function");
  assert.equal(typeof node.createNodeTransport, "function");
});

test("the only runtime dependency is @keyhole/core", () => {
  assert.deepEqual(Object.keys(packageJson.dependencies ?? {}), ["@keyhole/core"]);
  assert.equal(packageJson.peerDependencies, undefined);
  assert.equal(packageJson.optionalDependencies, undefined);
});
