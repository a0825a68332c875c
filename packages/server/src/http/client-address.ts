/**
 * The client's address: the socket's peer (no `X-Forwarded-For` is trusted yet). Rate limits
 * key IPv6 clients by their /64, since one host usually owns a whole /64.
 */
import { isIPv6 } from "node:net";

/** The peer address, with IPv4-mapped IPv6 (`::ffff:1.2.3.4`) shown as IPv4. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return "";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/** The rate-limit key of an address: IPv4 as is, IPv6 as its /64 prefix. */
export function sourceKey(address: string): string {
  if (!isIPv6(address)) return address;
  const hextets = expandIPv6(address.split("%")[0] ?? "");
  return `${hextets.slice(0, 4).join(":")}::/64`;
}

/** The eight hextets of an IPv6 address, zero-padded and lower-case. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  // An embedded IPv4 tail (`::1.2.3.4`) becomes two hextets.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const middle = tail === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...middle, ...right].map((h) => h.padStart(4, "0"));
}
