/**
 * The client's address: the socket's peer, or, when the peer is one of the operator's trusted
 * proxies (`keyhole server --trusted-proxy`), the address that proxy reports in
 * `X-Forwarded-For`. Rate limits, CIDR allowlists and audit entries all use it, so a client
 * must never be able to choose it: the header is ignored from anyone else, and a trusted proxy's
 * header must be a clean list of addresses or the request is refused.
 *
 * Rate limits key IPv6 clients by their /64, since one host usually owns a whole /64.
 */
import {
  type Cidr,
  cidrContains,
  formatIpAddress,
  KeyholeError,
  parseCidr,
  parseIpAddress,
} from "@keyhole/core";

/** Longer `X-Forwarded-For` chains are refused: no real deployment has this many hops. */
const MAX_FORWARDED_HOPS = 32;

const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
/** A dotted quad exactly as `formatIpAddress` writes it (no leading zeros). */
const CANONICAL_IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/**
 * A socket's peer address in one canonical text: IPv4-mapped IPv6 (however written) as IPv4,
 * IPv6 in RFC 5952 form, a zone id (`fe80::1%eth0`) dropped, since ranges cannot name one. Text
 * that is no address comes back as it is (it then matches no range).
 */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return "";
  // The common case, a socket's IPv4 peer (plain or IPv4-mapped), is already canonical.
  if (CANONICAL_IPV4.test(address)) return address;
  if (address.startsWith("::ffff:") && CANONICAL_IPV4.test(address.slice(7))) {
    return address.slice(7);
  }
  const bytes = parseIpAddress(address.split("%")[0] ?? "");
  if (bytes === null) return address;
  const mapped = bytes.length === 16 && MAPPED_PREFIX.every((b, i) => bytes[i] === b);
  return formatIpAddress(mapped ? bytes.slice(12) : bytes);
}

/** The rate-limit key of an address: IPv4 as is, IPv6 as its /64 prefix. */
export function sourceKey(address: string): string {
  if (!address.includes(":")) return address;
  const bytes = parseIpAddress(address.split("%")[0] ?? "");
  if (bytes === null) return address;
  const hextets: string[] = [];
  for (let i = 0; i < 8; i += 2) {
    hextets.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16).padStart(4, "0"));
  }
  return `${hextets.join(":")}::/64`;
}

/** True when `address` lies in one of `ranges`; an empty list allows every address. */
export function addressAllowed(ranges: readonly Cidr[], address: string): boolean {
  if (ranges.length === 0) return true;
  const bytes = parseIpAddress(address);
  return bytes !== null && ranges.some((range) => cidrContains(range, bytes));
}

/** Parses stored or configured ranges; throws `config_error` naming the first bad one. */
export function parseRanges(list: readonly string[], what: string): Cidr[] {
  return list.map((text) => {
    const parsed = parseCidr(text);
    if (!parsed.ok) {
      throw new KeyholeError("config_error", `${what} '${text.slice(0, 64)}': ${parsed.problem}`);
    }
    return parsed.cidr;
  });
}

/** Where a request came from, or why its forwarding header cannot be believed. */
export type ResolvedAddress =
  | { readonly ok: true; readonly address: string }
  | { readonly ok: false; readonly address: string; readonly problem: string };

/** The operator's trusted proxies and how to read their `X-Forwarded-For`. */
export class TrustedProxies {
  readonly #ranges: readonly Cidr[];

  /** `ranges`: CIDR text (a bare address is one host). Throws `config_error` on a bad one. */
  constructor(ranges: readonly string[] = []) {
    this.#ranges = parseRanges(ranges, "trusted proxy");
  }

  /**
   * The client address of a request from `peer` (normalised) carrying `forwardedFor` (Node
   * joins repeated headers with ", "). From a trusted peer, the header is read right to left
   * and the first address that is not itself a trusted proxy is the client: the entries
   * further left were written by the client and are neither believed nor looked at. When every
   * entry is a trusted proxy, the leftmost is the client. An entry read on the way that is not
   * a plain address (a port, brackets, a zone id, `unknown`, empty) refuses the request, with
   * the peer as its address: a proxy we trust sent something we cannot check.
   */
  resolve(peer: string, forwardedFor: string | string[] | undefined): ResolvedAddress {
    if (this.#ranges.length === 0 || forwardedFor === undefined || !this.#trusted(peer)) {
      return { ok: true, address: peer };
    }
    const text = Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor;
    const hops = text.split(",");
    if (hops.length > MAX_FORWARDED_HOPS) {
      return { ok: false, address: peer, problem: "too many X-Forwarded-For entries" };
    }
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = (hops[i] ?? "").trim();
      if (hop.includes("%") || parseIpAddress(hop) === null) {
        return { ok: false, address: peer, problem: "malformed X-Forwarded-For" };
      }
      client = normalizeAddress(hop);
      if (!this.#trusted(client)) break;
    }
    return { ok: true, address: client };
  }

  /** The ranges wider than one subnet (IPv4 /24, IPv6 /64): every host in them is believed. */
  wideRanges(): string[] {
    return this.#ranges
      .filter((r) => r.prefix < (r.network.length === 4 ? 24 : 64))
      .map((r) => `${formatIpAddress(r.network)}/${r.prefix}`);
  }

  #trusted(address: string): boolean {
    return this.#ranges.length > 0 && addressAllowed(this.#ranges, address);
  }
}
