/**
 * CIDR ranges for agent source allowlists (`keyhole agent create --cidr`) and the server's
 * trusted proxies. Strict: a range must be written as its network (`10.0.0.0/8`, not
 * `10.1.2.3/8`, which is refused with the network it probably meant), so what the owner typed is
 * what is enforced. A bare address is a single-host range (`/32`, `/128`).
 *
 * IPv4 and IPv6 never match each other. Clients reaching a dual-stack socket as
 * `::ffff:a.b.c.d` are seen as IPv4 by the server, so IPv4-mapped IPv6 ranges are refused: they
 * would never match anything.
 */
import { equalBytes } from "./bytes.js";
import { formatIpAddress, parseIpAddress } from "./ip-address.js";

/** A parsed range: the network's bytes (4 or 16) and the prefix length in bits. */
export interface Cidr {
  readonly network: Uint8Array;
  readonly prefix: number;
}

/** The outcome of parsing one range: the range and its canonical text, or why it is refused. */
export type CidrParse =
  | { readonly ok: true; readonly cidr: Cidr; readonly text: string }
  | { readonly ok: false; readonly problem: string };

/** At most this many ranges in one allowlist. */
export const MAX_CIDRS = 32;

const PREFIX = /^(?:0|[1-9]\d{0,2})$/;
const MAPPED_PREFIX = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** Parses `address/prefix` or a bare address. */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const network = parseIpAddress(addressText);
  if (network === null) return { ok: false, problem: "not an IPv4 or IPv6 address" };
  const bits = network.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const prefixText = text.slice(slash + 1);
    if (!PREFIX.test(prefixText) || Number(prefixText) > bits) {
      return { ok: false, problem: `the prefix length must be 0 to ${bits}` };
    }
    prefix = Number(prefixText);
  }
  if (network.length === 16 && startsWith(network, MAPPED_PREFIX)) {
    return { ok: false, problem: "an IPv4-mapped IPv6 range never matches; write it as IPv4" };
  }
  const masked = maskTo(network, prefix);
  const canonical = `${formatIpAddress(masked)}/${prefix}`;
  if (!equalBytes(masked, network)) {
    return { ok: false, problem: `host bits are set; the network is ${canonical}` };
  }
  return { ok: true, cidr: { network: masked, prefix }, text: canonical };
}

/** True when `address` (4 or 16 bytes) lies in `cidr`. */
export function cidrContains(cidr: Cidr, address: Uint8Array): boolean {
  if (address.length !== cidr.network.length) return false;
  return equalBytes(maskTo(address, cidr.prefix), cidr.network);
}

/**
 * Parses a whole allowlist: every range valid, at most `MAX_CIDRS`, returned as canonical text,
 * sorted and without duplicates (so equal lists compare equal). Throws a `RangeError` naming the
 * first bad range.
 */
export function canonicalCidrs(list: readonly string[]): string[] {
  if (list.length > MAX_CIDRS) throw new RangeError(`at most ${MAX_CIDRS} ranges`);
  const out = new Set<string>();
  for (const item of list) {
    const parsed = parseCidr(item);
    if (!parsed.ok) throw new RangeError(`'${item.slice(0, 64)}': ${parsed.problem}`);
    out.add(parsed.text);
  }
  return [...out].sort();
}

/** True when `list` is already what `canonicalCidrs` returns for it. */
export function isCanonicalCidrs(list: readonly string[]): boolean {
  try {
    const canonical = canonicalCidrs(list);
    return canonical.length === list.length && canonical.every((c, i) => c === list[i]);
  } catch {
    return false;
  }
}

function maskTo(address: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(address.length);
  for (let i = 0; i < address.length; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    const mask = bitsHere === 0 ? 0 : (0xff << (8 - bitsHere)) & 0xff;
    out[i] = (address[i] ?? 0) & mask;
  }
  return out;
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}
