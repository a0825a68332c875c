/**
 * Heap snapshots and needles for SECURITY-TESTS.md #20 ("Memory").
 *
 * Every needle is built byte by byte, never through a JavaScript string: a string holding the
 * canary (or its hex or base64) would itself sit in the heap and be found by the very search it
 * serves. Buffers are safe to hold, as a V8 heap snapshot records typed-array backing stores by
 * size only, never their contents.
 */
import { getHeapSnapshot } from "node:v8";

/** A named byte pattern to search for. */
export interface Needle {
  readonly label: string;
  readonly bytes: Buffer;
}

/**
 * A snapshot of this process's V8 heap, as its JSON text. V8 runs a full garbage collection
 * first, so only what is still reachable shows. Tens of MB for a test process.
 */
export async function takeHeapSnapshot(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of getHeapSnapshot()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const LOWER_HEX = "0123456789abcdef";
const UPPER_HEX = "0123456789ABCDEF";
const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Random bytes written as lowercase hex ASCII, without creating a string. */
export function hexAscii(bytes: Uint8Array, alphabet: string = LOWER_HEX): Buffer {
  const out = Buffer.alloc(bytes.length * 2);
  bytes.forEach((b, i) => {
    out[2 * i] = alphabet.charCodeAt(b >> 4);
    out[2 * i + 1] = alphabet.charCodeAt(b & 0x0f);
  });
  return out;
}

/** RFC 4648 §4/§5 base64 as ASCII bytes, unpadded, without creating a string. */
function base64Ascii(bytes: Uint8Array, alphabet: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = bytes.subarray(i, i + 3);
    const n = ((chunk[0] ?? 0) << 16) | ((chunk[1] ?? 0) << 8) | (chunk[2] ?? 0);
    for (let j = 0; j <= chunk.length; j++) out.push(alphabet.charCodeAt((n >> (18 - 6 * j)) & 63));
  }
  return Buffer.from(out);
}

/**
 * The encodings of SECURITY-TESTS #1 that can show in a snapshot's JSON text: raw (for a value
 * that is ASCII text), hex in both cases, base64 and base64url. Base64 is unpadded so it also
 * matches inside a longer base64 string starting at the same byte. The same forms as
 * packages/cli/src/test-support/needles.ts `encodingsOf`, copied because the SDK must not depend
 * on the CLI; UTF-16LE and URL-encoded forms do not apply to JSON text.
 */
export function heapNeedles(label: string, secret: Uint8Array, { raw = true } = {}): Needle[] {
  const forms: [string, Buffer][] = [
    ["hex", hexAscii(secret)],
    ["HEX", hexAscii(secret, UPPER_HEX)],
    ["base64", base64Ascii(secret, BASE64)],
    ["base64url", base64Ascii(secret, BASE64URL)],
  ];
  if (raw) forms.unshift(["raw", Buffer.from(secret)]);
  return forms.map(([form, bytes]) => ({ label: `${label} (${form})`, bytes }));
}

/** The labels of every needle found in `haystack`. */
export function findNeedles(haystack: Buffer, needles: readonly Needle[]): string[] {
  return needles.filter((n) => haystack.includes(n.bytes)).map((n) => n.label);
}
