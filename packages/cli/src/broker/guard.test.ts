import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { injectionProblems, readInitialEnviron, splitNodeOptions, trustProblems } from "./guard.js";

test("NODE_OPTIONS is split as Node splits it", () => {
  assert.deepEqual(splitNodeOptions(""), []);
  assert.deepEqual(splitNodeOptions("  --a  --b=1 "), ["--a", "--b=1"]);
  assert.deepEqual(splitNodeOptions('--require "/x y/h.cjs"'), ["--require", "/x y/h.cjs"]);
  assert.deepEqual(splitNodeOptions('"--req\\"uire"'), ['--req"uire']);
});

test("code-loading and debugger flags in NODE_OPTIONS are refused, harmless ones pass", () => {
  for (const options of [
    "--require /tmp/h.cjs",
    "-r /tmp/h.cjs",
    "--require=/tmp/h.cjs",
    "--import /tmp/h.mjs",
    "--loader ./l.mjs",
    "--experimental-loader=./l.mjs",
    "--inspect",
    "--inspect-brk=0",
    "--max-old-space-size=4096 --require h.cjs",
    '"--require" h.cjs',
    "--openssl-config=/tmp/engine.cnf",
    "--max-old-space-size 4096", // the space form: its value looks like an unknown argument
  ])
    assert.equal(injectionProblems([{ NODE_OPTIONS: options }], []).length, 1, options);
  for (const options of ["", "--max-old-space-size=4096 --no-warnings", "--enable-source-maps"])
    assert.deepEqual(injectionProblems([{ NODE_OPTIONS: options }], []), [], options);
});

test("exec arguments, preloaded libraries and disabled TLS verification are refused", () => {
  assert.deepEqual(injectionProblems([{}], ["--require", "/tmp/h.cjs"]), [
    "node was started with --require a value (execArgv)",
  ]);
  assert.deepEqual(injectionProblems([{ NODE_OPTIONS: "-r=/x --inspect=9229 -r /y" }], []), [
    "NODE_OPTIONS holds -r --inspect a value (code loading or debugging)",
  ]);
  for (const name of ["OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES"])
    assert.match(injectionProblems([{ [name]: "/tmp/x" }], [])[0] ?? "", new RegExp(name));
  assert.equal(injectionProblems([{ NODE_OPTIONS: "--use-openssl-ca" }], []).length, 1);
  assert.deepEqual(injectionProblems([{ SSL_CERT_FILE: "/etc/ssl/x.pem" }], []), []);
  assert.equal(injectionProblems([{}], ["--inspect"]).length, 1);
  assert.deepEqual(injectionProblems([{}], ["--no-warnings"]), []);
  assert.match(injectionProblems([{ LD_PRELOAD: "/tmp/evil.so" }], [])[0] ?? "", /LD_PRELOAD/);
  assert.match(injectionProblems([{ LD_AUDIT: "x.so" }], [])[0] ?? "", /LD_AUDIT/);
  assert.match(
    trustProblems([{ NODE_TLS_REJECT_UNAUTHORIZED: "0" }])[0] ?? "",
    /NODE_TLS_REJECT_UNAUTHORIZED/,
  );
  assert.match(trustProblems([{ NODE_EXTRA_CA_CERTS: "/x.pem" }])[0] ?? "", /NODE_EXTRA_CA_CERTS/);
  assert.deepEqual(trustProblems([{ NODE_TLS_REJECT_UNAUTHORIZED: "1" }]), []);
  assert.deepEqual(injectionProblems([{ LD_PRELOAD: "" }], []), []);
});

test("a problem in either environment counts: code can edit process.env, not the exec-time one", () => {
  const exec = { NODE_OPTIONS: "--require /tmp/h.cjs" };
  const edited = {};
  assert.equal(injectionProblems([exec, edited], []).length, 1);
  // The message names the variable, never its value.
  assert.ok(!injectionProblems([exec], []).join(" ").includes("/tmp/h.cjs"));
});

test("the exec-time environment is read from a NUL-separated environ file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "keyhole-guard-"));
  try {
    const path = join(dir, "environ");
    await writeFile(path, "A=1\0NODE_OPTIONS=--require x\0EMPTY=\0B=x=y\0");
    assert.deepEqual(readInitialEnviron(path), {
      A: "1",
      NODE_OPTIONS: "--require x",
      EMPTY: "",
      B: "x=y",
    });
    assert.equal(readInitialEnviron(join(dir, "missing")), null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
