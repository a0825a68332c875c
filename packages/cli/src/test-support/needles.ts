/**
 * Needles for the canary-dump and never-logged tests (SECURITY-TESTS #1 and #12): every form in
 * which a secret byte string could leak into a file or a log line.
 */
import { createHash } from "node:crypto";
import { parseToken } from "@keyhole/core";

/** A named byte pattern to search for. */
export interface Needle {
  readonly label: string;
  readonly bytes: Buffer;
}

/**
 * The encodings SECURITY-TESTS #1 lists: raw, hex (both cases), base64, base64url,
 * URL-encoded and UTF-16LE. Short encodings are not an issue: every input is ≥ 32 random bytes.
 */
export function encodingsOf(label: string, secret: Uint8Array): Needle[] {
  const raw = Buffer.from(secret);
  const hex = raw.toString("hex");
  const base64 = raw.toString("base64");
  const forms: [string, Buffer][] = [
    ["raw", raw],
    ["hex", Buffer.from(hex)],
    ["HEX", Buffer.from(hex.toUpperCase())],
    ["base64", Buffer.from(base64)],
    // Unpadded, so it also matches inside a longer base64 string that starts at the same byte.
    ["base64-unpadded", Buffer.from(base64.replace(/=+$/, ""))],
    ["base64url", Buffer.from(raw.toString("base64url"))],
    ["url-encoded", Buffer.from(encodeURIComponent(raw.toString("latin1")))],
    ["utf16le-of-hex", Buffer.from(hex, "utf16le")],
    ["utf16le-of-base64", Buffer.from(base64, "utf16le")],
  ];
  // The raw bytes as UTF-16LE only make sense when they are text; canaries here are binary.
  return forms.map(([form, bytes]) => ({ label: `${label} (${form})`, bytes }));
}

/** A text value in the encodings that apply to text (raw, UTF-16LE, URL-encoded, base64). */
export function textEncodingsOf(label: string, text: string): Needle[] {
  const raw = Buffer.from(text, "utf8");
  return [
    { label: `${label} (text)`, bytes: raw },
    { label: `${label} (utf16le)`, bytes: Buffer.from(text, "utf16le") },
    { label: `${label} (url-encoded)`, bytes: Buffer.from(encodeURIComponent(text)) },
    { label: `${label} (base64)`, bytes: Buffer.from(raw.toString("base64").replace(/=+$/, "")) },
  ];
}

/**
 * Everything of an agent token that must never be seen outside the agent: the token text, its
 * seed, and the auth key derived from it (the server receives the auth key but must not keep or
 * log it).
 */
export async function tokenNeedles(label: string, tokenText: string): Promise<Needle[]> {
  const bytes = Buffer.from(tokenText.slice(4), "base64url");
  const seed = bytes.subarray(16, 48);
  const token = parseToken(tokenText);
  const { authKey } = await token.deriveKeys();
  token.destroy();
  return [
    ...textEncodingsOf(`${label} token`, tokenText),
    ...encodingsOf(`${label} seed`, seed),
    ...encodingsOf(`${label} auth key`, authKey),
  ];
}

/** The labels of every needle found in `haystack`. */
export function findNeedles(haystack: Buffer, needles: readonly Needle[]): string[] {
  return needles.filter((n) => haystack.includes(n.bytes)).map((n) => n.label);
}

/** A short fingerprint, to check a fetched value without printing it. */
export function digest(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
