// SECURITY-TESTS #21, supply chain: what an install can run and fetch is pinned in the repository.
// Install scripts are off (`.npmrc`), every version we declare is exact, the lockfile fetches only
// from the npm registry with a sha512 integrity for every package, the only package with an
// install script is the one `npm run setup` compiles by name, every runtime dependency is
// explained in docs/dependencies.md, and the SDK's production tree is the one the README names.
// (`npm ci --ignore-scripts` itself runs in `npm run setup`, before this suite, in CI.)
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../e2e/harness.js";

interface LockEntry {
  readonly version?: string;
  readonly resolved?: string;
  readonly integrity?: string;
  readonly link?: boolean;
  readonly dev?: boolean;
  readonly optional?: boolean;
  readonly hasInstallScript?: boolean;
  readonly dependencies?: Record<string, string>;
}

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly scripts?: Record<string, string>;
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
}

const WORKSPACES = ["core", "sdk", "server", "cli"];
const REGISTRY = "https://registry.npmjs.org/";
const EXACT = /^\d+\.\d+\.\d+$/;
// The one package allowed an install script: setup compiles it by name, never through npm's
// lifecycle (docs/dependencies.md).
const INSTALL_SCRIPTS_ALLOWED = new Set(["node_modules/better-sqlite3"]);
const LIFECYCLE = ["preinstall", "install", "postinstall", "prepare", "prepublish"];

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");
const json = <T>(path: string) => JSON.parse(read(path)) as T;
const lock = json<{ lockfileVersion: number; packages: Record<string, LockEntry> }>(
  "package-lock.json",
);
const manifests: [string, Manifest][] = [
  ["package.json", json<Manifest>("package.json")],
  ...WORKSPACES.map((w): [string, Manifest] => [
    `packages/${w}/package.json`,
    json<Manifest>(`packages/${w}/package.json`),
  ]),
];

test("install scripts are off and saved versions are exact (.npmrc)", () => {
  const settings = new Map(
    read(".npmrc")
      .split("\n")
      .filter((line) => line.includes("="))
      .map((line) => line.split("=").map((part) => part.trim()) as [string, string]),
  );
  assert.equal(settings.get("ignore-scripts"), "true");
  assert.equal(settings.get("save-exact"), "true");
});

test("every dependency we declare is an exact registry version; no lifecycle scripts of our own", () => {
  for (const [path, manifest] of manifests) {
    const declared = {
      ...manifest.dependencies,
      ...manifest.devDependencies,
      ...manifest.optionalDependencies,
      ...manifest.peerDependencies,
    };
    for (const [name, spec] of Object.entries(declared))
      assert.match(spec, EXACT, `${path}: ${name}@${spec} is not an exact version`);
    for (const script of LIFECYCLE)
      assert.equal(manifest.scripts?.[script], undefined, `${path} has a ${script} script`);
  }
});

test("the lockfile fetches only from the npm registry, each package with a sha512 integrity", () => {
  assert.equal(lock.lockfileVersion, 3);
  let external = 0;
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key === "" || key.startsWith("packages/")) continue;
    if (entry.link === true) {
      // Workspace links only, never a path outside the repository.
      assert.match(entry.resolved ?? "", /^packages\/[a-z]+$/, key);
      continue;
    }
    external++;
    assert.match(entry.version ?? "", /^\d+\.\d+\.\d+/, `${key}: no exact version`);
    assert.match(entry.integrity ?? "", /^sha512-[A-Za-z0-9+/]{86}==$/, `${key}: integrity`);
    if (entry.resolved !== undefined)
      assert.ok(entry.resolved.startsWith(REGISTRY), `${key} resolves to ${entry.resolved}`);
    for (const [name, spec] of Object.entries(entry.dependencies ?? {}))
      assert.doesNotMatch(spec, /^(git|file|link|https?):|\//, `${key} → ${name}@${spec}`);
  }
  assert.ok(external > 10, "the lockfile was read");
});

test("only the package setup compiles by name has an install script", () => {
  const withScripts = Object.entries(lock.packages)
    .filter(([, entry]) => entry.hasInstallScript === true)
    .map(([key]) => key);
  for (const key of withScripts) assert.ok(INSTALL_SCRIPTS_ALLOWED.has(key), key);
  assert.match(read("scripts/setup.mjs"), /"ci", "--ignore-scripts"/);
});

// better-sqlite3 declares prebuild-install (and the 34 packages it pulls in) for its install script, which
// never runs here: setup compiles it by name. Its library loads only `bindings`. Checked below.
const INSTALL_ONLY = "prebuild-install";

/**
 * The production dependency closure of a workspace, resolved the way Node resolves it, without
 * the install-only subtree.
 */
function productionTree(workspace: string): Set<string> {
  const seen = new Set<string>();
  const visit = (from: string, deps: Record<string, string> | undefined) => {
    for (const name of Object.keys(deps ?? {})) {
      // Nested first (from/node_modules/name), then each parent folder, then the root.
      const candidates = [`${from}/node_modules/${name}`];
      let dir = from;
      for (;;) {
        const parent = dir.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, "");
        if (parent === dir || parent === "") break;
        candidates.push(`${parent}/node_modules/${name}`);
        dir = parent;
      }
      candidates.push(`node_modules/${name}`);
      const key = candidates.find((k) => lock.packages[k] !== undefined);
      assert.ok(key !== undefined, `${name} (needed by ${from || "root"}) is not in the lockfile`);
      if (seen.has(name) || name === INSTALL_ONLY) continue;
      seen.add(name);
      const entry = lock.packages[key] as LockEntry;
      const target = entry.link === true ? (entry.resolved as string) : key;
      visit(target, lock.packages[target]?.dependencies);
    }
  };
  visit(`packages/${workspace}`, lock.packages[`packages/${workspace}`]?.dependencies);
  return seen;
}

test("the SDK's production tree is @keyhole/core alone, which has none, as the README says", () => {
  assert.deepEqual([...productionTree("sdk")], ["@keyhole/core"]);
  assert.deepEqual([...productionTree("core")], []);
  assert.match(read("README.md"), /`@keyhole\/sdk → @keyhole\/core`/);
});

test("every third-party runtime dependency is explained in docs/dependencies.md", () => {
  const documented = read("docs/dependencies.md");
  for (const workspace of WORKSPACES)
    for (const name of productionTree(workspace))
      if (!name.startsWith("@keyhole/"))
        assert.ok(
          documented.includes(`\`${name}\``) || documented.includes(name),
          `${name} (runtime dependency of ${workspace}) is not in docs/dependencies.md`,
        );
});

test("prebuild-install is install-time only: better-sqlite3's library never loads it", () => {
  const sqliteLib = join(REPO_ROOT, "node_modules/better-sqlite3/lib");
  const sources = readdirSync(sqliteLib, { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".js"))
    .map((file) => readFileSync(join(sqliteLib, file), "utf8"));
  assert.ok(sources.length > 3, "better-sqlite3's lib was read");
  assert.ok(sources.some((source) => source.includes("require('bindings')")));
  for (const source of sources) assert.ok(!source.includes(INSTALL_ONLY));
  assert.match(read("docs/dependencies.md"), /`prebuild-install` is installed but never run/);
});
