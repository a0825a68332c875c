import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalizeAddress, sourceKey } from "./client-address.js";

describe("client addresses", () => {
  it("shows IPv4-mapped IPv6 as IPv4", () => {
    assert.equal(normalizeAddress("::ffff:10.1.2.3"), "10.1.2.3");
    assert.equal(normalizeAddress("::1"), "::1");
    assert.equal(normalizeAddress(undefined), "");
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
});
