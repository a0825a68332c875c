/**
 * Streaming-safe redaction of secret byte strings. A match is overwritten with `*` of the same
 * length, so `content-length` stays right; the stream holds back only the shortest tail that could
 * still grow into a match, so server-sent events still pass through as they arrive.
 */
import { Transform, type TransformCallback } from "node:stream";

const MASK = 0x2a; // "*"

/** Overwrites every occurrence of each needle in `buf`, in place; returns how many it found. */
export function redactInPlace(buf: Buffer, needles: readonly Uint8Array[]): number {
  let found = 0;
  for (const needle of needles) {
    if (needle.length === 0) continue;
    let at = buf.indexOf(needle);
    while (at !== -1) {
      buf.fill(MASK, at, at + needle.length);
      found++;
      at = buf.indexOf(needle, at + needle.length);
    }
  }
  return found;
}

/** Length of the longest proper prefix of a needle that `buf` ends with. */
function pendingTail(buf: Buffer, needles: readonly Uint8Array[]): number {
  let longest = 0;
  for (const needle of needles) {
    for (let k = Math.min(buf.length, needle.length - 1); k > longest; k--) {
      if (buf.compare(needle, 0, k, buf.length - k) === 0) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}

/** A transform that redacts needles split across any chunk boundary. */
export function createRedactor(needles: readonly Uint8Array[]): Transform {
  const live = needles.filter((n) => n.length > 0);
  let tail: Buffer = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      const buf = tail.length === 0 ? Buffer.from(chunk) : Buffer.concat([tail, chunk]);
      redactInPlace(buf, live);
      const keep = pendingTail(buf, live);
      tail = Buffer.from(buf.subarray(buf.length - keep));
      if (buf.length > keep) this.push(buf.subarray(0, buf.length - keep));
      done();
    },
    flush(done: TransformCallback) {
      // Shorter than every needle, so it cannot hold a match.
      if (tail.length > 0) this.push(tail);
      done();
    },
  });
}

/** Redacts a header value (Node keeps header bytes as latin1 strings). */
export function redactHeaderValue(value: string, needles: readonly Uint8Array[]): string {
  const buf = Buffer.from(value, "latin1");
  return redactInPlace(buf, needles) === 0 ? value : buf.toString("latin1");
}
