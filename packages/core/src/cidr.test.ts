import assert from "node:assert/strict";
import { isIPv4, isIPv6 } from "node:net";
import { describe, it } from "node:test";
import fc from "fast-check";
import { canonicalCidrs, cidrContains, isCanonicalCidrs, parseCidr } from "./cidr.js";
import { formatIpAddress, parseIpAddress } from "./ip-address.js";

const RUNS = Math.max(1, Number(process.env.KEYHOLE_FUZZ_RUNS ?? 2000));

function ip(text: string): Uint8Array {
  const bytes = parseIpAddress(text);
  assert.ok(bytes, `${text} should parse`);
  return bytes;
}

function cidr(text: string) {
  const parsed = parseCidr(text);
  assert.ok(parsed.ok, `${text} should parse`);
  return parsed;
}

describe("parseIpAddress", () => {
  it("reads IPv4 and IPv6 forms", () => {
    assert.deepEqual([...ip("192.0.2.1")], [192, 0, 2, 1]);
    assert.deepEqual([...ip("::1")], [...new Array(15).fill(0), 1]);
    assert.deepEqual([...ip("::")], new Array(16).fill(0));
    assert.equal(formatIpAddress(ip("2001:DB8:0:0:0:0:0:1")), "2001:db8::1");
    assert.equal(formatIpAddress(ip("::ffff:192.0.2.1")), "::ffff:c000:201");
    assert.equal(formatIpAddress(ip("1:2:3:4:5:6:7::")), "1:2:3:4:5:6:7:0");
    assert.equal(formatIpAddress(ip("1:0:0:2:0:0:0:3")), "1:0:0:2::3");
    assert.equal(formatIpAddress(ip("1:0:0:2:0:0:3:4")), "1::2:0:0:3:4");
  });

  it("refuses everything that is not exactly one address", () => {
    for (const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "1.2.3.256",
      "1.2.3.-1",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1::2::3",
      ":1",
      "1:",
      ":::",
      "12345::",
      "1.2.3.4::",
      "::1.2.3.4:5",
      "::1.2.3.4:1.2.3.4",
      "fe80::1%eth0",
      "[::1]",
      "::1:80".padEnd(60, "0"),
      "1:2:3:4:5:6:7:8::",
      "g::1",
    ]) {
      assert.equal(parseIpAddress(bad), null, bad);
    }
  });

  it("agrees with node:net on random address-like text", () => {
    const alphabet = fc.constantFrom(..."0123456789abcdefABCDEF:.%".split(""));
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 45 }), (text) => {
        const ours = parseIpAddress(text) !== null;
        // Node accepts zone ids and leading-zero IPv4 octets inside IPv6; we refuse both.
        const leadingZero = /(^|[.:])0\d/.test(text) && text.includes(".");
        const node = (isIPv4(text) || isIPv6(text)) && !text.includes("%") && !leadingZero;
        assert.equal(ours, node, text);
      }),
      { numRuns: RUNS },
    );
  });

  it("formats to text that node:net reads back to the same bytes", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 4, maxLength: 4 }),
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
        ),
        (bytes) => {
          const text = formatIpAddress(bytes);
          assert.ok(isIPv4(text) || isIPv6(text), text);
          assert.deepEqual(parseIpAddress(text), bytes);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("parseCidr", () => {
  it("reads ranges and single hosts, canonically", () => {
    assert.equal(cidr("10.0.0.0/8").text, "10.0.0.0/8");
    assert.equal(cidr("192.0.2.7").text, "192.0.2.7/32");
    assert.equal(cidr("2001:DB8::/32").text, "2001:db8::/32");
    assert.equal(cidr("::1").text, "::1/128");
    assert.equal(cidr("0.0.0.0/0").text, "0.0.0.0/0");
    assert.equal(cidr("::/0").text, "::/0");
  });

  it("refuses host bits, bad prefixes and IPv4-mapped ranges, saying why", () => {
    const problem = (text: string) => {
      const parsed = parseCidr(text);
      assert.equal(parsed.ok, false, text);
      return parsed.ok ? "" : parsed.problem;
    };
    assert.match(problem("10.1.2.3/8"), /host bits are set; the network is 10\.0\.0\.0\/8/);
    assert.match(problem("2001:db8::1/32"), /network is 2001:db8::\/32/);
    assert.match(problem("10.0.0.0/33"), /0 to 32/);
    assert.match(problem("::/129"), /0 to 128/);
    assert.match(problem("10.0.0.0/08"), /0 to 32/);
    assert.match(problem("10.0.0.0/"), /0 to 32/);
    assert.match(problem("10.0.0.0/8/8"), /0 to 32/);
    assert.match(problem("::ffff:10.0.0.0/104"), /IPv4-mapped/);
    assert.match(problem("example.com/8"), /not an IPv4 or IPv6 address/);
  });

  it("matches exactly the addresses inside, and never across families", () => {
    const v4 = cidr("10.1.0.0/16").cidr;
    assert.ok(cidrContains(v4, ip("10.1.0.0")));
    assert.ok(cidrContains(v4, ip("10.1.255.255")));
    assert.ok(!cidrContains(v4, ip("10.2.0.0")));
    assert.ok(!cidrContains(v4, ip("10.0.255.255")));
    assert.ok(!cidrContains(v4, ip("::ffff:10.1.0.1")));
    const odd = cidr("192.0.2.128/25").cidr;
    assert.ok(cidrContains(odd, ip("192.0.2.128")));
    assert.ok(!cidrContains(odd, ip("192.0.2.127")));
    const v6 = cidr("2001:db8:1::/48").cidr;
    assert.ok(cidrContains(v6, ip("2001:db8:1:ffff::1")));
    assert.ok(!cidrContains(v6, ip("2001:db8:2::1")));
    assert.ok(!cidrContains(v6, ip("10.1.0.1")));
    assert.ok(cidrContains(cidr("0.0.0.0/0").cidr, ip("203.0.113.9")));
    assert.ok(!cidrContains(cidr("0.0.0.0/0").cidr, ip("::1")));
    assert.ok(cidrContains(cidr("::1").cidr, ip("0:0:0:0:0:0:0:1")));
  });

  it("agrees with a bit-by-bit reference on random ranges and addresses", () => {
    const bit = (bytes: Uint8Array, i: number) => ((bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 128 }),
        (a, b, prefix) => {
          // Make b share a random-length prefix with a, so matches happen often.
          const shared = prefix - ((b[0] ?? 0) % 3);
          for (let i = 0; i < Math.max(0, shared); i++) {
            const byte = i >> 3;
            const mask = 1 << (7 - (i & 7));
            b[byte] = ((b[byte] ?? 0) & ~mask) | ((a[byte] ?? 0) & mask);
          }
          const network = parseCidr(`${formatIpAddress(a)}/${prefix}`);
          if (network.ok) {
            let expected = true;
            for (let i = 0; i < prefix; i++) if (bit(a, i) !== bit(b, i)) expected = false;
            assert.equal(cidrContains(network.cidr, b), expected);
          } else {
            // Refused only for host bits or the IPv4-mapped block.
            assert.match(network.problem, /host bits|IPv4-mapped/);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("canonicalCidrs", () => {
  it("sorts, removes duplicates and canonicalises", () => {
    assert.deepEqual(canonicalCidrs(["::1", "10.0.0.0/8", "0:0::1/128"]), [
      "10.0.0.0/8",
      "::1/128",
    ]);
    assert.ok(isCanonicalCidrs(["10.0.0.0/8", "::1/128"]));
    assert.ok(!isCanonicalCidrs(["::1/128", "10.0.0.0/8"]));
    assert.ok(!isCanonicalCidrs(["10.0.0.0/8", "10.0.0.0/8"]));
    assert.ok(!isCanonicalCidrs(["10.0.0.1/8"]));
    assert.ok(isCanonicalCidrs([]));
  });

  it("names the first bad range and caps the list", () => {
    assert.throws(() => canonicalCidrs(["10.0.0.0/8", "nope"]), /'nope': not an IPv4/);
    assert.throws(
      () => canonicalCidrs(Array.from({ length: 33 }, (_, i) => `10.0.0.${i}`)),
      /at most 32/,
    );
  });
});
