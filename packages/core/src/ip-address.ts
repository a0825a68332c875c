/**
 * Strict IP address text ⇄ bytes, for CIDR allowlists and `X-Forwarded-For`. Written out here
 * rather than taken from `node:net` because core has no `node:*` imports (the SDK runs anywhere
 * WebCrypto does), and because what is accepted must be exact:
 *
 * - IPv4: four decimal octets 0–255, no leading zeros (`010.0.0.1` is octal to some parsers and
 *   decimal to others, so it is refused rather than guessed).
 * - IPv6: eight groups of 1–4 hex digits, at most one `::`, optionally ending in an IPv4 dotted
 *   quad in place of the last two groups. No zone id (`%eth0`), no brackets, no port.
 */

/** The address as 4 (IPv4) or 16 (IPv6) bytes, or null when the text is not exactly one. */
export function parseIpAddress(text: string): Uint8Array | null {
  if (text.length > MAX_TEXT) return null;
  if (text.includes(":")) return parseIPv6(text);
  return parseIPv4(text);
}

/** The canonical text of 4 or 16 address bytes: dotted quad, or RFC 5952 IPv6. */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length !== 16) throw new RangeError("an IP address is 4 or 16 bytes");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952 §4.2: compress the longest run of two or more zero groups, the first if tied.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`, the longest address text there is. */
const MAX_TEXT = 45;
const OCTET = /^(?:0|[1-9]\d{0,2})$/;
const GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] ?? "";
    if (!OCTET.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    out[i] = value;
  }
  return out;
}

function parseIPv6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = groupsOf(halves[0] ?? "");
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? "") : [];
  if (head === null || tail === null) return null;
  const all = [...head, ...tail];
  // An IPv4 tail may only be the last item of the whole text (`::1.2.3.4`, never `1.2.3.4::`).
  const lastIndex = halves.length === 2 && tail.length === 0 ? -1 : all.length - 1;
  if (all.some((item, i) => item.includes(".") && i !== lastIndex)) return null;
  const groups: number[] = [];
  for (const item of all) {
    if (item.includes(".")) {
      const v4 = parseIPv4(item);
      if (v4 === null) return null;
      groups.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
    } else {
      if (!GROUP.test(item)) return null;
      groups.push(Number.parseInt(item, 16));
    }
  }
  const headCount = countGroups(head);
  const missing = 8 - groups.length;
  // Without `::` there must be exactly eight groups; with it, `::` stands for at least one.
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const full = [
    ...groups.slice(0, headCount),
    ...new Array<number>(halves.length === 2 ? missing : 0).fill(0),
    ...groups.slice(headCount),
  ];
  const out = new Uint8Array(16);
  full.forEach((group, i) => {
    out[i * 2] = group >> 8;
    out[i * 2 + 1] = group & 0xff;
  });
  return out;
}

/** The colon-separated items of one side of `::` ("" is no items), or null for an empty item. */
function groupsOf(side: string): string[] | null {
  if (side === "") return [];
  const items = side.split(":");
  return items.some((item) => item === "") ? null : items;
}

/** How many 16-bit groups the items stand for (an IPv4 tail is two). */
function countGroups(items: readonly string[]): number {
  return items.reduce((n, item) => n + (item.includes(".") ? 2 : 1), 0);
}
