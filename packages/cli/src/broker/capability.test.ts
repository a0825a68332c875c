import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CapabilityBook,
  isCapabilityShaped,
  newCapability,
  presentedCapabilities,
} from "./capability.js";
import { parseRouteSpec } from "./routes.js";

const bearer = parseRouteSpec("openai");
const apiKey = parseRouteSpec("anthropic");
const query = parseRouteSpec("maps=https://maps.test,secret=k,query=key");
const basic = parseRouteSpec("jira=https://jira.test,secret=k,basic=bot");

test("capabilities are khc_ plus 43 base64url characters, and fresh each time", () => {
  const a = newCapability();
  assert.ok(isCapabilityShaped(a));
  assert.notEqual(a, newCapability());
  for (const bad of [
    "",
    "khc_",
    `${a}x`,
    a.slice(0, -1),
    `khx_${a.slice(4)}`,
    `${a.slice(0, -1)}=`,
  ])
    assert.ok(!isCapabilityShaped(bad), bad);
});

test("the book accepts a route's capability only for that route, and nothing after revokeAll", () => {
  const book = new CapabilityBook();
  const cap = book.issue("openai");
  const other = book.issue("anthropic");
  assert.ok(book.accepts("openai", [cap]));
  assert.ok(!book.accepts("openai", [other]));
  assert.ok(!book.accepts("anthropic", [cap]));
  assert.ok(!book.accepts("nosuch", [cap]));
  assert.ok(!book.accepts("openai", []));
  assert.ok(!book.accepts("openai", [newCapability()]));
  book.revokeAll();
  assert.ok(!book.accepts("openai", [cap]));
  assert.throws(() => book.set("x", "not-a-capability"), /invalid capability/);
});

test("a capability is found where each route's SDK puts its key, or in x-keyhole-capability", () => {
  const cap = newCapability();
  assert.deepEqual(presentedCapabilities(bearer, { authorization: `Bearer ${cap}` }, ""), [cap]);
  assert.deepEqual(presentedCapabilities(bearer, { authorization: `token ${cap}` }, ""), [cap]);
  assert.deepEqual(presentedCapabilities(bearer, { authorization: cap }, ""), [cap]);
  assert.deepEqual(presentedCapabilities(apiKey, { "x-api-key": cap }, ""), [cap]);
  assert.deepEqual(presentedCapabilities(query, {}, `a=1&key=${cap}`), [cap]);
  const encoded = Buffer.from(`bot:${cap}`).toString("base64");
  assert.deepEqual(presentedCapabilities(basic, { authorization: `Basic ${encoded}` }, ""), [cap]);
  assert.deepEqual(presentedCapabilities(query, { "x-keyhole-capability": cap }, ""), [cap]);
});

test("anything else presents nothing", () => {
  const cap = newCapability();
  // The wrong slot for the route, a mangled header, two query values, arrays.
  assert.deepEqual(presentedCapabilities(apiKey, { authorization: `Bearer ${cap}` }, ""), []);
  assert.deepEqual(presentedCapabilities(bearer, { authorization: `Bearer  ${cap} x` }, ""), []);
  assert.deepEqual(presentedCapabilities(bearer, { authorization: `Be@rer ${cap}` }, ""), []);
  assert.deepEqual(presentedCapabilities(query, {}, `key=${cap}&key=${cap}`), []);
  assert.deepEqual(presentedCapabilities(bearer, { authorization: "Bearer sk-real-key" }, ""), []);
  assert.deepEqual(presentedCapabilities(basic, { authorization: "Basic !!!" }, ""), []);
  assert.deepEqual(
    presentedCapabilities(bearer, { "set-cookie": [cap] } as Record<string, string[]>, ""),
    [],
  );
});
