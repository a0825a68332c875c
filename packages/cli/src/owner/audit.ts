/**
 * Reading and verifying the audit log. `verifyAuditLog` recomputes the hash chain from every
 * entry (FORMATS.md "Audit entry hash"), checks the server's signed checkpoint with the audit key
 * pinned at `init`, and checks that the log neither shrank nor changed below the checkpoint this
 * machine pinned last time. Omission of new entries cannot be detected, rewriting can.
 */
import {
  type AuditChainResult,
  AuditChainVerifier,
  type AuditEntryView,
  type CheckpointView,
  encodeBase64url,
  encodeCheckpoint,
  equalBytes,
  KeyholeError,
  verify,
} from "@keyhole/core";
// The server's one-shot SHA-256 (crypto.hash where Node has it): the same function the store
// hashes with, without loading the rest of the server.
import { sha256Sync } from "@keyhole/server/sha256";
import { type AuditPin, updateConfig } from "./config.js";
import type { OwnerSession } from "./session.js";
import { bytes, parseAuditPage, parseCheckpoint } from "./views.js";

/** Filters of `GET /v1/owner/audit`. */
export interface AuditFilter {
  readonly agent?: string;
  readonly secret?: string;
  /** Only entries at or after this time (ms). */
  readonly since?: number;
}

/** The largest page the API serves. */
const PAGE = 1000;

function auditQuery(after: number, limit: number, filter: AuditFilter): string {
  const params = new URLSearchParams({ after: String(after), limit: String(limit) });
  if (filter.agent !== undefined) params.set("agent", filter.agent);
  if (filter.secret !== undefined) params.set("secret", filter.secret);
  if (filter.since !== undefined) params.set("since", String(filter.since));
  return `/v1/owner/audit?${params.toString()}`;
}

/** One page of entries after `after`. */
export async function fetchAuditPage(
  session: OwnerSession,
  after: number,
  limit: number,
  filter: AuditFilter = {},
): Promise<{ entries: AuditEntryView[]; next: number | null }> {
  const page = parseAuditPage(
    await session.client.request("GET", auditQuery(after, limit, filter)),
  );
  let previous = after;
  for (const entry of page.entries) {
    if (entry.seq <= previous) {
      throw new KeyholeError(
        "untrusted_server",
        `audit log verification failed: entry seq ${entry.seq} is out of order (after seq ${previous})`,
      );
    }
    previous = entry.seq;
  }
  return page;
}

/**
 * The pages of entries matching `filter` after `after`, in order. The next page is asked for as
 * soon as one arrives, so the server reads it while the caller checks this one. With `ahead`
 * above 1 (the whole log, whose pages are full and contiguous), that many are asked for at
 * once, the later ones guessing the cursor (`after` + a full page); a guess the previous page
 * does not confirm is dropped and asked again, so no page is used out of its place.
 */
export async function* auditPages(
  session: OwnerSession,
  filter: AuditFilter,
  after = 0,
  ahead = 1,
): AsyncGenerator<AuditEntryView[], void, undefined> {
  const inFlight: { after: number; page: ReturnType<typeof fetchAuditPage> }[] = [];
  // Guesses are made only while the server's pages are the full, contiguous ones guessed; after
  // one wrong guess, never again: a dropped request runs to its end (the client cannot cancel
  // it), so a server answering short pages must not make us open one more per page.
  let guessing = ahead > 1;
  const ask = (from: number) => {
    const page = fetchAuditPage(session, from, PAGE, filter);
    // Dropped or left behind when the caller stops early: their failures are nobody's concern.
    page.catch(() => undefined);
    inFlight.push({ after: from, page });
  };
  ask(after);
  for (;;) {
    const asked = inFlight.shift();
    if (asked === undefined || asked.after !== after) throw new KeyholeError("internal");
    const page = await asked.page;
    const last = page.entries.at(-1);
    if (page.next === null || last === undefined) {
      yield page.entries;
      return;
    }
    const next = Math.max(page.next, last.seq);
    if (next <= after) {
      throw new KeyholeError("untrusted_server", "the audit log pages do not advance");
    }
    after = next;
    if (inFlight[0] !== undefined && inFlight[0].after !== after) {
      inFlight.length = 0;
      guessing = false;
    }
    const full = page.entries.length === PAGE && next === last.seq;
    const wanted = guessing && full ? ahead : 1;
    while (inFlight.length < wanted) ask((inFlight.at(-1)?.after ?? after - PAGE) + PAGE);
    yield page.entries;
  }
}

/**
 * Every entry matching `filter` after `after`. With `keepLast`, only the last that many are
 * kept (the newest), so a long log does not fill memory.
 */
export async function fetchAudit(
  session: OwnerSession,
  filter: AuditFilter,
  options: { after?: number; keepLast?: number } = {},
): Promise<AuditEntryView[]> {
  const kept: AuditEntryView[] = [];
  for await (const entries of auditPages(session, filter, options.after ?? 0)) {
    for (const entry of entries) kept.push(entry);
    if (options.keepLast !== undefined && kept.length > options.keepLast) {
      kept.splice(0, kept.length - options.keepLast);
    }
  }
  return kept;
}

function tampered(message: string): never {
  throw new KeyholeError("untrusted_server", `audit log verification failed: ${message}`);
}

/** What `audit verify` established. */
export interface AuditVerification {
  readonly entries: number;
  readonly checkpoint: CheckpointView;
  readonly previousPin: AuditPin | null;
}

/** The line for a chain failure; `found` is the entry at the failing position. */
function chainFailure(failure: Extract<AuditChainResult, { ok: false }>, found: number): never {
  if (failure.reason === "sequence_gap") {
    tampered(
      found > failure.seq
        ? `entry seq ${failure.seq} is missing (next is seq ${found})`
        : `entry seq ${found} is out of order`,
    );
  }
  if (failure.reason === "malformed_entry") tampered(`seq ${failure.seq} is malformed`);
  tampered(`seq ${failure.seq} does not match the hash chain (edited, removed or reordered)`);
}

/** Pages asked for at once by `audit verify`: one being read by the server, one queued. */
const AHEAD = 2;

/** Entries hashed between two turns of the event loop. */
const CHUNK = 200;

/**
 * Checks the whole log against the hash chain page by page as the pages arrive, keeping the
 * heads after the `sizes` asked for. Returns the chain (its size is the number of entries).
 * A page is hashed in chunks with a turn of the event loop between them: the request for the
 * next page is signed asynchronously and would otherwise only leave after the whole page, so
 * the server would wait for the hashing instead of reading its next page meanwhile.
 */
export async function verifyAuditChainPages(
  pages: AsyncIterable<readonly AuditEntryView[]>,
  sizes: readonly number[],
): Promise<AuditChainVerifier> {
  const chain = new AuditChainVerifier(sha256Sync, { keepHeadsAt: sizes });
  for await (const entries of pages) {
    for (let from = 0; from < entries.length; from += CHUNK) {
      if (from > 0) await new Promise((resolve) => setImmediate(resolve));
      const part = entries.length <= CHUNK ? entries : entries.slice(from, from + CHUNK);
      const base = chain.size;
      const result = chain.verify(part);
      if (!result.ok) chainFailure(result, part[result.seq - base - 1]?.seq ?? result.seq);
    }
  }
  return chain;
}

/**
 * Verifies the whole log against the server's signed checkpoint and this machine's pin, then
 * pins the new checkpoint. Any failure is `untrusted_server` with a line saying what is wrong.
 */
export async function verifyAuditLog(session: OwnerSession): Promise<AuditVerification> {
  const checkpoint = parseCheckpoint(
    await session.client.request("GET", "/v1/owner/audit/checkpoint"),
  );
  const pinnedKey = bytes(session.config.audit_pk);
  if (!equalBytes(bytes(checkpoint.audit_pk), pinnedKey)) {
    tampered("the server's audit key differs from the one pinned at init");
  }
  const head = bytes(checkpoint.head);
  const signed = encodeCheckpoint(checkpoint.log_id, checkpoint.size, head);
  if (!(await verify(pinnedKey, signed, bytes(checkpoint.sig)))) {
    tampered("the checkpoint signature is not valid for the pinned audit key");
  }
  const pin = session.config.audit_pin;
  if (pin !== null && pin.log_id !== checkpoint.log_id) {
    tampered(`the log id changed since the pinned checkpoint (was ${pin.log_id})`);
  }
  if (pin !== null && checkpoint.size < pin.size) {
    tampered(`the checkpoint went back from size ${pin.size} to ${checkpoint.size}`);
  }
  const sizes = pin === null ? [checkpoint.size] : [checkpoint.size, pin.size];
  const chain = await verifyAuditChainPages(auditPages(session, {}, 0, AHEAD), sizes);
  const entries = chain.size;
  if (pin !== null && entries < pin.size) {
    tampered(`the log shrank from ${pin.size} entries (pinned) to ${entries}`);
  }
  if (entries < checkpoint.size) {
    tampered(`the log has ${entries} entries but its checkpoint covers ${checkpoint.size}`);
  }
  if (!equalBytes(chain.headAt(checkpoint.size) ?? new Uint8Array(0), head)) {
    tampered(`the entries up to seq ${checkpoint.size} do not match the signed checkpoint`);
  }
  if (pin !== null) {
    const pinnedHead = chain.headAt(pin.size);
    if (pinnedHead === null || !equalBytes(pinnedHead, bytes(pin.head))) {
      tampered(`entries up to seq ${pin.size} changed since the pinned checkpoint`);
    }
  }
  const newPin: AuditPin = {
    log_id: checkpoint.log_id,
    size: checkpoint.size,
    head: encodeBase64url(head),
  };
  await updateConfig(session.home, (config) => ({ ...config, audit_pin: newPin }));
  return { entries, checkpoint, previousPin: pin };
}
