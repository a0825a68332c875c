import assert from "node:assert/strict";
import { test } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { buildChildEnv, exposedCredentials, strippedNames } from "./child-env.js";
import { parseRouteSpec } from "./routes.js";

const routes = [parseRouteSpec("openai")];
const routeVars = { OPENAI_BASE_URL: "http://127.0.0.1:1/openai/v1", OPENAI_API_KEY: "khc_cap" };
const parent = {
  PATH: "/usr/bin",
  HOME: "/home/a",
  LC_ALL: "C",
  LANG: "C.UTF-8",
  KEYHOLE_TOKEN_FILE: "/home/a/agent.token",
  KEYHOLE_TOKEN: "kh1_x",
  keyhole_addr: "http://x",
  OPENAI_API_KEY: "sk-real",
  OPENAI_BASE_URL: "https://api.openai.com/v1",
  AWS_SECRET_ACCESS_KEY: "aws-secret",
  MY_SETTING: "1",
};

function usage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isKeyholeError(error) && error.code === "usage");
    assert.match(error.message, pattern);
    return true;
  });
}

test("by default the child gets a few harmless variables and the routes' ones, nothing else", () => {
  const env = buildChildEnv({ parent, inherit: false, extra: [], routes, routeVars });
  assert.deepEqual(env, {
    PATH: "/usr/bin",
    HOME: "/home/a",
    LC_ALL: "C",
    LANG: "C.UTF-8",
    ...routeVars,
  });
});

test("--inherit-env keeps the rest but strips KEYHOLE_*, the routes' variables and the secret's name", () => {
  const env = buildChildEnv({ parent, inherit: true, extra: [], routes, routeVars });
  assert.equal(env.MY_SETTING, "1");
  assert.equal(env.AWS_SECRET_ACCESS_KEY, "aws-secret", "not Keyhole's: the user's choice to pass");
  for (const name of ["KEYHOLE_TOKEN_FILE", "KEYHOLE_TOKEN", "keyhole_addr"])
    assert.equal(env[name], undefined, name);
  assert.equal(env.OPENAI_API_KEY, "khc_cap");
  assert.equal(env.OPENAI_BASE_URL, routeVars.OPENAI_BASE_URL);
  const custom = [parseRouteSpec("up=https://u.test,secret=db.password,basic")];
  assert.deepEqual([...strippedNames(custom)].sort(), ["DB_PASSWORD", "UP_API_KEY", "UP_BASE_URL"]);
  const inherited = buildChildEnv({
    parent: { ...parent, DB_PASSWORD: "pw", UP_API_KEY: "k" },
    inherit: true,
    extra: [],
    routes: custom,
    routeVars: {},
  });
  assert.equal(inherited.DB_PASSWORD, undefined);
  assert.equal(inherited.UP_API_KEY, undefined);
});

test("--env copies or sets a variable, and refuses KEYHOLE_* and the routes' variables", () => {
  const env = buildChildEnv({
    parent,
    inherit: false,
    extra: ["MY_SETTING", "MODE=fast=yes", "ABSENT"],
    routes,
    routeVars,
  });
  assert.equal(env.MY_SETTING, "1");
  assert.equal(env.MODE, "fast=yes");
  assert.ok(!("ABSENT" in env));
  const build = (extra: string[]) =>
    buildChildEnv({ parent, inherit: false, extra, routes, routeVars });
  usage(() => build(["KEYHOLE_TOKEN_FILE"]), /KEYHOLE_/);
  usage(() => build(["keyhole_token=x"]), /KEYHOLE_/);
  usage(() => build(["OPENAI_API_KEY"]), /route/);
  usage(() => build(["=x"]), /NAME/);
  usage(() => build(["A B=1"]), /NAME/);
});

test("credentials in run's own environment are named: Keyhole's, and each route's key variables", () => {
  assert.deepEqual(exposedCredentials(parent, routes).sort(), ["KEYHOLE_TOKEN", "OPENAI_API_KEY"]);
  assert.deepEqual(exposedCredentials({ KEYHOLE_PASSPHRASE: "p", OPENAI_BASE_URL: "u" }, routes), [
    "KEYHOLE_PASSPHRASE",
  ]);
  assert.deepEqual(exposedCredentials({ KEYHOLE_TOKEN: "" }, routes), [], "empty is unset");
  const custom = [parseRouteSpec("up=https://u.test,secret=db.password,basic,key-env=UP_KEY")];
  assert.deepEqual(
    exposedCredentials({ DB_PASSWORD: "x", UP_KEY: "y", UP_BASE_URL: "z" }, custom),
    ["DB_PASSWORD", "UP_KEY"],
  );
  const attached = { W_URL: "http://127.0.0.1:1/w", W_KEY: `khc_${"A".repeat(43)}` };
  assert.deepEqual(exposedCredentials({ W_KEY: "sk-real", W_URL: "x" }, [], attached), ["W_KEY"]);
});
