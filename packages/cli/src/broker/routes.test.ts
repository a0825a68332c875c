import assert from "node:assert/strict";
import { test } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { createRedactor, redactHeaderValue } from "./redact.js";
import {
  PRESETS,
  parseRoute,
  parseRouteSpec,
  parseRoutesFile,
  routeEnv,
  secretEnvName,
} from "./routes.js";

function refused(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isKeyholeError(err));
    assert.equal(err.code, "config_error");
    if (pattern !== undefined) assert.match(err.message, pattern);
    return true;
  });
}

const good = {
  name: "acme",
  prefix: "/acme",
  upstream: "https://api.acme.test",
  secret: "acme-key",
  inject: { kind: "header", name: "X-Acme-Key", template: "Token {{secret}}" },
};

test("a routes file with valid routes parses, normalising origin and header name", () => {
  const routes = parseRoutesFile(
    JSON.stringify({
      routes: [
        { ...good, upstream: "https://API.acme.test:443/" },
        {
          name: "maps",
          upstream: "https://maps.test",
          secret: "maps",
          inject: { kind: "query", param: "key" },
          env: { MAPS_URL: "{{broker}}/maps" },
        },
      ],
    }),
  );
  assert.equal(routes.length, 2);
  assert.equal(routes[0]?.upstream, "https://api.acme.test");
  assert.deepEqual(routes[0]?.inject, {
    kind: "header",
    name: "x-acme-key",
    template: "Token {{secret}}",
  });
  assert.equal(routes[1]?.prefix, "/maps");
  assert.deepEqual(routes[1]?.env, { MAPS_URL: "{{broker}}/maps" });
});

test("unknown fields are refused at every level", () => {
  refused(() => parseRoutesFile(JSON.stringify({ routes: [good], extra: 1 })), /extra/);
  refused(() => parseRoute({ ...good, follow: true }), /follow/);
  refused(() => parseRoute({ ...good, inject: { ...good.inject, value: "x" } }), /value/);
  refused(() => parseRoutesFile("not json"));
  refused(() => parseRoutesFile(JSON.stringify({ routes: [] })));
  refused(() => parseRoutesFile(JSON.stringify([good])));
});

test("upstreams must be https origins; plain http only on loopback with the test flag", () => {
  refused(() => parseRoute({ ...good, upstream: "http://api.acme.test" }), /https/);
  refused(() => parseRoute({ ...good, upstream: "http://127.0.0.1:8080" }), /https/);
  refused(
    () =>
      parseRoute(
        { ...good, upstream: "http://api.acme.test" },
        { allowPlainHttpLoopbackUpstream: true },
      ),
    /https/,
  );
  const local = parseRoute(
    { ...good, upstream: "http://127.0.0.1:8080" },
    { allowPlainHttpLoopbackUpstream: true },
  );
  assert.equal(local.upstream, "http://127.0.0.1:8080");
  refused(() => parseRoute({ ...good, upstream: "https://api.acme.test/v1" }), /origin/);
  refused(() => parseRoute({ ...good, upstream: "https://u:p@api.acme.test" }), /credentials/);
  refused(() => parseRoute({ ...good, upstream: "ftp://api.acme.test" }));
  refused(() => parseRoute({ ...good, upstream: "nope" }));
});

test("templates hold {{secret}} exactly once, and reserved or malformed headers are refused", () => {
  const header = (name: string, template: string) => ({
    ...good,
    inject: { kind: "header", name, template },
  });
  refused(() => parseRoute(header("X-Key", "static")), /exactly once/);
  refused(() => parseRoute(header("X-Key", "{{secret}}{{secret}}")), /exactly once/);
  refused(() => parseRoute(header("X-Key", "Bearer {{secret}}\r\nX-Evil: 1")));
  refused(() => parseRoute(header("Host", "{{secret}}")), /reserved/);
  refused(() => parseRoute(header("Bad Name", "{{secret}}")));
  refused(() => parseRoute({ ...good, inject: { kind: "basic", user: "a:b" } }));
  refused(() => parseRoute({ ...good, inject: { kind: "query", param: "a&b" } }));
  refused(() => parseRoute({ ...good, inject: { kind: "cookie" } }));
  refused(() => parseRoute({ ...good, prefix: "/a/../b" }));
  refused(() => parseRoute({ ...good, prefix: "acme" }));
  refused(() => parseRoute({ ...good, name: "Acme" }));
  refused(() => parseRoute({ ...good, env: { KEYHOLE_TOKEN: "x" } }));
});

test("duplicate names and overlapping prefixes are refused", () => {
  refused(() => parseRoutesFile(JSON.stringify({ routes: [good, good] })), /duplicate/);
  refused(
    () =>
      parseRoutesFile(
        JSON.stringify({ routes: [good, { ...good, name: "sub", prefix: "/acme/sub" }] }),
      ),
    /overlapping/,
  );
});

test("presets set the variables each official SDK reads, and a secret can be overridden", () => {
  const openai = parseRouteSpec("openai");
  assert.equal(openai.upstream, "https://api.openai.com");
  assert.equal(openai.secret, "openai-api-key");
  assert.deepEqual(openai.inject, {
    kind: "header",
    name: "authorization",
    template: "Bearer {{secret}}",
  });
  assert.deepEqual(openai.env, {
    OPENAI_BASE_URL: "{{broker}}/openai/v1",
    OPENAI_API_KEY: "{{capability}}",
  });
  const anthropic = parseRouteSpec("anthropic,secret=work-claude");
  assert.equal(anthropic.secret, "work-claude");
  assert.deepEqual(anthropic.inject, { kind: "header", name: "x-api-key", template: "{{secret}}" });
  assert.deepEqual(anthropic.env, {
    ANTHROPIC_BASE_URL: "{{broker}}/anthropic",
    ANTHROPIC_API_KEY: "{{capability}}",
  });
  assert.equal(PRESETS.github?.upstream, "https://api.github.com");
  assert.deepEqual(parseRouteSpec("github").env, {
    GITHUB_API_URL: "{{broker}}/github",
    GITHUB_TOKEN: "{{capability}}",
  });
  refused(() => parseRouteSpec("nosuch"), /unknown preset/);
  refused(() => parseRouteSpec("openai,header=X: {{secret}}"), /unknown option/);
  refused(() => parseRouteSpec("toString"), /unknown preset/);
});

test("the generic NAME=https://host,secret=S,header='X: {{secret}}' form parses", () => {
  const route = parseRouteSpec(
    "acme=https://api.acme.test,secret=acme-key,header='X-Key: {{secret}}'",
  );
  assert.deepEqual(route, {
    name: "acme",
    prefix: "/acme",
    upstream: "https://api.acme.test",
    secret: "acme-key",
    inject: { kind: "header", name: "x-key", template: "{{secret}}" },
    env: { ACME_BASE_URL: "{{broker}}/acme", ACME_API_KEY: "{{capability}}" },
  });
  const named = parseRouteSpec(
    "my-api=https://a.test,secret=k,basic,url-env=MY_URL,key-env=MY_KEY",
  );
  assert.deepEqual(named.env, { MY_URL: "{{broker}}/my-api", MY_KEY: "{{capability}}" });
  assert.deepEqual(routeEnv(named, "http://127.0.0.1:9", "khc_x"), {
    MY_URL: "http://127.0.0.1:9/my-api",
    MY_KEY: "khc_x",
  });
  assert.equal(secretEnvName("openai-api-key"), "OPENAI_API_KEY");
  assert.equal(secretEnvName("db.password"), "DB_PASSWORD");
  refused(() => parseRouteSpec("m=https://m.test,secret=k,basic,key-env=KEYHOLE_TOKEN"), /env/);
  refused(() => parseRouteSpec("m=https://m.test,secret=k,basic,url-env=X,key-env=X"), /differ/);
  refused(() => parseRouteSpec("m=https://m.test,secret=k,basic,key-env=lower"), /env/);
  const comma = parseRouteSpec('acme=https://a.test,secret=k,header="X: a, {{secret}}"');
  assert.deepEqual(comma.inject, { kind: "header", name: "x", template: "a, {{secret}}" });
  assert.deepEqual(parseRouteSpec("m=https://m.test,secret=k,query=key").inject, {
    kind: "query",
    param: "key",
  });
  assert.deepEqual(parseRouteSpec("m=https://m.test,secret=k,basic").inject, { kind: "basic" });
  assert.deepEqual(parseRouteSpec("m=https://m.test,secret=k,basic=bot").inject, {
    kind: "basic",
    user: "bot",
  });
  refused(() => parseRouteSpec("m=http://m.test,secret=k,basic"), /https/);
  refused(() => parseRouteSpec("m=https://m.test,basic"), /secret/);
  refused(() => parseRouteSpec("m=https://m.test,secret=k"), /exactly one/);
  refused(() => parseRouteSpec("m=https://m.test,secret=k,basic,query=a"), /exactly one/);
  refused(() => parseRouteSpec("m=https://m.test,secret=k,header='X: {{secret}}"), /quote/);
  refused(() => parseRouteSpec("m=https://m.test,secret=k,basic,follow=1"), /unknown option/);
});

test("the redactor masks a needle split at every possible chunk boundary", async () => {
  const needle = Buffer.from("s3cr3t-value");
  const text = Buffer.from("a s3cr3t-value b s3cr3t-valu s3cr3t-value");
  const expected = "a ************ b s3cr3t-valu ************";
  for (let cut = 0; cut <= text.length; cut++) {
    const redactor = createRedactor([needle]);
    const out: Buffer[] = [];
    redactor.on("data", (c: Buffer) => out.push(c));
    redactor.write(text.subarray(0, cut));
    redactor.end(text.subarray(cut));
    await new Promise((resolve) => redactor.on("end", resolve));
    assert.equal(Buffer.concat(out).toString(), expected, `cut at ${cut}`);
  }
  assert.equal(redactHeaderValue("x s3cr3t-value", [needle]), "x ************");
});
