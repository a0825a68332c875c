import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatIpAddress, KeyholeError, parseIpAddress } from "@keyhole/core";
import fc from "fast-check";
import {
  addressAllowed,
  normalizeAddress,
  parseRanges,
  sourceKey,
  TrustedProxies,
} from "./client-address.js";

describe("client addresses", () => {
  it("shows IPv4-mapped IPv6 as IPv4", () => {
    assert.equal(normalizeAddress("::ffff:10.1.2.3"), "10.1.2.3");
    assert.equal(normalizeAddress("::1"), "::1");
    assert.equal(normalizeAddress(undefined), "");
    assert.equal(normalizeAddress("::FFFF:cb00:7107"), "203.0.113.7");
    assert.equal(normalizeAddress("0:0:0:0:0:ffff:203.0.113.7"), "203.0.113.7");
    assert.equal(normalizeAddress("2001:DB8:0::1"), "2001:db8::1");
    assert.equal(normalizeAddress("fe80::1%eth0"), "fe80::1");
    assert.equal(normalizeAddress("not an address"), "not an address");
  });

  it("matches allowlists; an empty one allows everything, junk matches nothing", () => {
    const ranges = parseRanges(["10.0.0.0/8", "fe80::/10"], "test");
    assert.ok(addressAllowed(ranges, "10.1.2.3"));
    assert.ok(addressAllowed(ranges, normalizeAddress("fe80::1%eth0")));
    assert.ok(!addressAllowed(ranges, "11.0.0.1"));
    assert.ok(!addressAllowed(ranges, "not an address"));
    assert.ok(addressAllowed([], "anything"));
    assert.throws(
      () => parseRanges(["10.0.0.1/8"], "trusted proxy"),
      (e: unknown) => e instanceof KeyholeError && e.code === "config_error",
    );
  });

  it("reads X-Forwarded-For only from trusted peers, right to left", () => {
    const proxies = new TrustedProxies(["192.0.2.0/24"]);
    assert.deepEqual(proxies.resolve("198.51.100.1", "203.0.113.7"), {
      ok: true,
      address: "198.51.100.1",
    });
    assert.deepEqual(proxies.resolve("192.0.2.1", undefined), { ok: true, address: "192.0.2.1" });
    assert.deepEqual(proxies.resolve("192.0.2.1", "203.0.113.7"), {
      ok: true,
      address: "203.0.113.7",
    });
    assert.deepEqual(proxies.resolve("192.0.2.1", ["1.1.1.1", "203.0.113.7, 192.0.2.9"]), {
      ok: true,
      address: "203.0.113.7",
    });
    assert.deepEqual(proxies.resolve("192.0.2.1", "192.0.2.8, 192.0.2.9"), {
      ok: true,
      address: "192.0.2.8",
    });
    assert.equal(proxies.resolve("192.0.2.1", "203.0.113.7:80").ok, false);
    assert.equal(proxies.resolve("192.0.2.1", "fe80::1%eth0").ok, false);
    assert.equal(proxies.resolve("192.0.2.1", "").ok, false);
    assert.deepEqual(new TrustedProxies([]).resolve("192.0.2.1", "203.0.113.7"), {
      ok: true,
      address: "192.0.2.1",
    });
    assert.deepEqual(new TrustedProxies(["10.0.0.0/8", "::1", "2001:db8::/48"]).wideRanges(), [
      "10.0.0.0/8",
      "2001:db8::/48",
    ]);
  });

  it("keys IPv4 by address and IPv6 by /64", () => {
    assert.equal(sourceKey("10.1.2.3"), "10.1.2.3");
    assert.equal(sourceKey("2001:db8:1:2:3:4:5:6"), "2001:0db8:0001:0002::/64");
    assert.equal(sourceKey("2001:db8:1:2::9"), sourceKey("2001:db8:1:2:ffff:1:2:3"));
    assert.notEqual(sourceKey("2001:db8:1:2::9"), sourceKey("2001:db8:1:3::9"));
    assert.equal(sourceKey("::1"), "0000:0000:0000:0000::/64");
    assert.equal(sourceKey("fe80::1%eth0"), "fe80:0000:0000:0000::/64");
    assert.equal(sourceKey("::ffff:1.2.3.4"), "0000:0000:0000:0000::/64");
  });

  it("the IPv4 fast path gives what the full parse gives", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.constantFrom("", "::ffff:", "::FFFF:", "0:0:0:0:0:ffff:"),
        fc.constantFrom("", "0", "00"),
        (bytes, prefix, pad) => {
          const text = `${prefix}${pad}${formatIpAddress(bytes)}`;
          const parsed = parseIpAddress(text);
          const full =
            parsed === null
              ? text
              : formatIpAddress(parsed.length === 16 ? parsed.slice(12) : parsed);
          assert.equal(normalizeAddress(text), full, text);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
