/**
 * SECURITY-TESTS #10, core half: every strict parser of core fed random strings and bytes, and
 * valid golden encodings with bytes flipped, inserted or deleted. Each parser must either return
 * a well-formed result (one that re-encodes to exactly its input) or fail with a KeyholeError of
 * the one code it documents; never another exception, never a half-built object.
 *
 * Case counts scale with KEYHOLE_FUZZ_RUNS (`npm run fuzz` sets it high); the default keeps this
 * file at a few seconds. fast-check prints the seed and the shrunk counterexample on failure.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import fc from "fast-check";
import { makeAgent, makeOwner, sealVersion, sha256Sync } from "./fixtures.test.helper.js";
import {
  type AgentToken,
  type AuditFields,
  agentRecipientId,
  canonicalHosts,
  concatBytes,
  decodeBase64url,
  decodeTokenId,
  decodeUtf8,
  encodeAuditEntry,
  encodeBase64url,
  encodeGrantMessage,
  fingerprint,
  formatAgentAuthorization,
  formatOwnerAuthorization,
  type GrantStatement,
  isCanonicalHosts,
  isId,
  isKeyholeError,
  isValidHost,
  isValidName,
  type KeyholeErrorCode,
  openValue,
  ownerRecipientId,
  parseAgentAuthorization,
  parseOwnerAuthorization,
  parseToken,
  parseValueEnvelope,
  parseWrap,
  randomBytes,
  type SecretVersionRef,
  SUITE_V1,
  signAgentKey,
  unwrapDek,
  VALUE_MAGIC,
  verifyAgentKey,
  verifyGrant,
  WRAP_LENGTH,
  WRAP_MAGIC,
} from "./index.js";

/** Cases per cheap target; crypto-heavy targets run a fraction of it. */
const RUNS = Math.max(1, Number(process.env.KEYHOLE_FUZZ_RUNS ?? 2000));
const slow = (divisor: number): number => Math.max(20, Math.ceil(RUNS / divisor));

/** Runs `action`; a throw must be a KeyholeError with one of `codes`. Returns the result or null. */
function okOrKeyhole<T>(action: () => T, codes: readonly KeyholeErrorCode[]): T | null {
  try {
    return action();
  } catch (error) {
    assert.ok(isKeyholeError(error), `non-Keyhole error: ${String(error)}`);
    assert.ok(codes.includes(error.code), `unexpected code ${error.code}`);
    return null;
  }
}

/** The async form of `okOrKeyhole`. */
async function okOrKeyholeAsync<T>(
  action: () => Promise<T>,
  codes: readonly KeyholeErrorCode[],
): Promise<T | null> {
  try {
    return await action();
  } catch (error) {
    assert.ok(isKeyholeError(error), `non-Keyhole error: ${String(error)}`);
    assert.ok(codes.includes(error.code), `unexpected code ${error.code}`);
    return null;
  }
}

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** One UTF-16 unit or short run that parsers tend to get wrong. */
const nasty = fc.constantFrom(
  "\u0000",
  "\uD800", // lone high surrogate
  "\uDFFF", // lone low surrogate
  "\u202E", // right-to-left override
  "\u200F",
  "\uFEFF",
  "\u0130", // İ: lower-cases to two code units
  "\uFF21", // fullwidth A
  "\u00C0\u00AF", // the latin1 view of an overlong "/"
  "😀",
  "=",
  "+",
  "/",
  ".",
  " ",
  "\n",
  "%",
  "é",
);

/** Strings mixing the base64url alphabet with edge-case units: close to valid, often not. */
const edgeString = (maxLength: number) =>
  fc.string({
    unit: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...B64_ALPHABET) },
      { weight: 1, arbitrary: nasty },
      { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
    ),
    maxLength,
  });

/** Any string, from any of a few generators. */
const anyString = (maxLength: number) =>
  fc.oneof(
    edgeString(maxLength),
    fc.string({ unit: "binary", maxLength }),
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  );

/** A mutation of a byte string: flip a bit, set, insert or delete a byte, truncate or extend. */
type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "insert"; at: number; value: number }
  | { kind: "delete"; at: number }
  | { kind: "truncate"; at: number }
  | { kind: "extend"; extra: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
  }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ max: 255 }) }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("extend" as const),
    extra: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

/** Applies mutations in order; positions wrap around the current length. */
function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out: Uint8Array = Uint8Array.from(bytes);
  for (const m of mutations) {
    const n = out.length;
    switch (m.kind) {
      case "flip":
        if (n > 0) out[m.at % n] = (out[m.at % n] as number) ^ (1 << m.bit);
        break;
      case "set":
        if (n > 0) out[m.at % n] = m.value & 0xff;
        break;
      case "insert": {
        const at = m.at % (n + 1);
        out = concatBytes(out.subarray(0, at), Uint8Array.of(m.value), out.subarray(at));
        break;
      }
      case "delete":
        if (n > 0) out = concatBytes(out.subarray(0, m.at % n), out.subarray((m.at % n) + 1));
        break;
      case "truncate":
        out = out.slice(0, m.at % (n + 1));
        break;
      case "extend":
        out = concatBytes(out, m.extra);
        break;
    }
  }
  return out;
}

/** The same mutations on a string, one UTF-16 unit at a time. */
function mutateText(text: string, mutations: readonly Mutation[], unit: string): string {
  let out = text;
  for (const m of mutations) {
    const n = out.length;
    const at = m.kind === "extend" ? n : m.at % (n + 1);
    switch (m.kind) {
      case "flip":
      case "set":
        if (n > 0) out = out.slice(0, at % n) + unit + out.slice((at % n) + 1);
        break;
      case "insert":
        out = out.slice(0, at) + unit + out.slice(at);
        break;
      case "delete":
        if (n > 0) out = out.slice(0, at % n) + out.slice((at % n) + 1);
        break;
      case "truncate":
        out = out.slice(0, at);
        break;
      case "extend":
        out += unit;
        break;
    }
  }
  return out;
}

const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 });
const textUnit = fc.oneof(fc.constantFrom(...B64_ALPHABET), nasty);

describe("base64url decoder (fuzz)", () => {
  it("returns null or bytes that re-encode to exactly the input, for any string", () => {
    fc.assert(
      fc.property(anyString(64), (text) => {
        const bytes = okOrKeyhole(() => decodeBase64url(text), ["bad_request"]);
        if (bytes === null) return;
        assert.ok(bytes instanceof Uint8Array);
        assert.equal(encodeBase64url(bytes), text);
      }),
      { numRuns: RUNS },
    );
  });

  it("rejects a mutated encoding or decodes it canonically", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), mutations, textUnit, (bytes, ms, unit) => {
        const text = mutateText(encodeBase64url(bytes), ms, unit);
        const decoded = okOrKeyhole(() => decodeBase64url(text), ["bad_request"]);
        if (decoded !== null) assert.equal(encodeBase64url(decoded), text);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("strict UTF-8 decoder (fuzz)", () => {
  it("returns a string that re-encodes to the input, or bad_request", () => {
    const overlong = fc.constantFrom(
      Uint8Array.of(0xc0, 0xaf),
      Uint8Array.of(0xe0, 0x80, 0xaf),
      Uint8Array.of(0xed, 0xa0, 0x80),
      Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
      Uint8Array.of(0x00),
    );
    const bytes = fc
      .array(fc.oneof(fc.uint8Array({ maxLength: 8 }), overlong), { maxLength: 8 })
      .map((parts) => concatBytes(...parts));
    fc.assert(
      fc.property(bytes, (b) => {
        const text = okOrKeyhole(() => decodeUtf8(b), ["bad_request"]);
        if (text !== null) assert.deepEqual(new TextEncoder().encode(text), b);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("agent token and Authorization parsers (fuzz)", () => {
  let golden = "";
  let goldenToken: AgentToken;

  before(async () => {
    const owner = await makeOwner();
    goldenToken = (await makeAgent(owner, "agt_golden")).token;
    golden = goldenToken.encode();
  });

  /** A parsed token must re-encode to the text it came from. */
  function checkToken(text: string): void {
    const token = okOrKeyhole(() => parseToken(text), ["invalid_token"]);
    if (token === null) return;
    assert.equal(token.encode(), text);
    assert.equal(token.tokenId.length, 16);
    assert.equal(token.ownerFingerprint.length, 16);
  }

  it("parseToken accepts only canonical tokens, for any string", () => {
    const nearToken = edgeString(91).map((rest) => `kh1_${rest}`);
    fc.assert(fc.property(fc.oneof(anyString(100), nearToken), checkToken), { numRuns: RUNS });
  });

  it("parseToken rejects a mutated golden token unless it is again a canonical token", () => {
    fc.assert(
      fc.property(mutations, textUnit, (ms, unit) => checkToken(mutateText(golden, ms, unit))),
      { numRuns: RUNS },
    );
  });

  it("parseToken rejects a token whose bytes are mutated (checksum or length)", () => {
    const bytes = decodeBase64url(golden.slice(4));
    fc.assert(
      fc.property(mutations, (ms) => {
        const changed = mutate(bytes, ms);
        const text = `kh1_${encodeBase64url(changed)}`;
        const token = okOrKeyhole(() => parseToken(text), ["invalid_token"]);
        // CRC-32 detects every burst of ≤ 32 bits, so a parsed result is the original.
        if (token !== null) assert.equal(token.encode(), golden);
      }),
      { numRuns: RUNS },
    );
  });

  it("decodeTokenId returns 16 bytes or bad_request", () => {
    fc.assert(
      fc.property(anyString(30), (text) => {
        const id = okOrKeyhole(() => decodeTokenId(text), ["bad_request"]);
        if (id !== null) assert.equal(encodeBase64url(id), text);
        if (id !== null) assert.equal(id.length, 16);
      }),
      { numRuns: RUNS },
    );
  });

  it("parseAgentAuthorization never throws and round-trips what it accepts", () => {
    const header = fc.oneof(
      anyString(80),
      fc
        .tuple(edgeString(24), fc.constantFrom(".", "..", ""), edgeString(45))
        .map(([a, dot, b]) => `Keyhole ${a}${dot}${b}`),
      fc
        .tuple(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 36 }))
        .map(([a, b]) => `Keyhole ${encodeBase64url(a)}.${encodeBase64url(b)}`),
    );
    fc.assert(
      fc.property(header, (text) => {
        const parsed = parseAgentAuthorization(text);
        if (parsed === null) return;
        assert.equal(parsed.tokenId.length, 16);
        assert.equal(parsed.authKey.length, 32);
        assert.equal(formatAgentAuthorization(parsed.tokenId, parsed.authKey), text);
      }),
      { numRuns: RUNS },
    );
  });

  it("parseOwnerAuthorization never throws and round-trips what it accepts", () => {
    const ts = fc.oneof(
      fc.nat().map(String),
      fc.constantFrom("0", "01", "-1", "1e3", "9007199254740993", "99999999999999999", "1.5", ""),
      anyString(18),
    );
    const header = fc.oneof(
      anyString(120),
      fc
        .tuple(
          ts,
          fc.uint8Array({ maxLength: 20 }),
          fc.uint8Array({ maxLength: 70 }),
          edgeString(4),
        )
        .map(
          ([t, nonce, sig, junk]) =>
            `Keyhole-Owner ${t}.${encodeBase64url(nonce)}.${encodeBase64url(sig)}${junk}`,
        ),
    );
    fc.assert(
      fc.property(header, (text) => {
        const parsed = parseOwnerAuthorization(text);
        if (parsed === null) return;
        assert.ok(Number.isSafeInteger(parsed.timestamp) && parsed.timestamp > 0);
        assert.equal(parsed.nonce.length, 16);
        assert.equal(parsed.signature.length, 64);
        assert.equal(
          formatOwnerAuthorization(parsed.timestamp, parsed.nonce, parsed.signature),
          text,
        );
      }),
      { numRuns: RUNS },
    );
  });

  it("ids, names and hosts are plain predicates on any string", () => {
    fc.assert(
      fc.property(
        anyString(140),
        fc.constantFrom("vault", "agent", "secret") as fc.Arbitrary<"vault" | "agent" | "secret">,
        (text, kind) => {
          assert.equal(typeof isId(kind, text), "boolean");
          assert.equal(typeof isId(kind, `agt_${text}`), "boolean");
          assert.equal(typeof isValidName(text), "boolean");
          assert.equal(typeof isValidHost(text), "boolean");
          const hosts = okOrKeyhole(() => canonicalHosts([text, "a.com"]), ["bad_request"]);
          if (hosts !== null) assert.ok(isCanonicalHosts(hosts));
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe("KHS1 value envelope (fuzz)", () => {
  const ref: SecretVersionRef = { vaultId: "vlt_golden", secretId: "sec_golden", version: 3 };
  let envelope: Uint8Array = new Uint8Array();
  let dek: Uint8Array = new Uint8Array();
  const value = new TextEncoder().encode("golden secret value");

  before(async () => {
    const owner = await makeOwner();
    const sealed = await sealVersion(owner, ref, "golden", value, []);
    envelope = sealed.envelope;
    dek = sealed.dek;
  });

  /** A parsed envelope must be exactly its parts, re-joined. */
  function checkParsed(bytes: Uint8Array): void {
    const parsed = okOrKeyhole(() => parseValueEnvelope(bytes), ["invalid_envelope"]);
    if (parsed === null) return;
    assert.equal(parsed.dekId.length, 16);
    assert.equal(parsed.nonce.length, 12);
    assert.ok(parsed.ciphertext.length >= 16);
    const joined = concatBytes(
      VALUE_MAGIC,
      Uint8Array.of(SUITE_V1),
      parsed.dekId,
      parsed.nonce,
      parsed.ciphertext,
    );
    assert.deepEqual(joined, bytes);
  }

  it("parseValueEnvelope on random bytes, with and without the magic", () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 120 }),
      fc
        .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 80 }))
        .map(([suite, rest]) => concatBytes(VALUE_MAGIC, Uint8Array.of(suite), rest)),
    );
    fc.assert(fc.property(bytes, checkParsed), { numRuns: RUNS });
  });

  it("a mutated golden envelope is rejected, or opens to exactly the original value", async () => {
    await fc.assert(
      fc.asyncProperty(mutations, async (ms) => {
        const changed = mutate(envelope, ms);
        checkParsed(changed);
        const opened = await okOrKeyholeAsync(
          () => openValue(ref, dek, changed),
          ["invalid_envelope", "decrypt_failed"],
        );
        if (opened !== null) {
          assert.deepEqual(changed, envelope);
          assert.deepEqual(opened, value);
        }
      }),
      { numRuns: slow(4) },
    );
  });

  it("openValue with a random DEK or reference never opens and never throws a foreign error", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 0, max: 2 ** 32 }),
        async (key, version) => {
          const opened = await okOrKeyholeAsync(
            () => openValue({ ...ref, version }, key, envelope),
            ["invalid_envelope", "decrypt_failed"],
          );
          assert.equal(opened, null);
        },
      ),
      { numRuns: slow(4) },
    );
  });
});

describe("KHW1 wrap (fuzz)", () => {
  const ref: SecretVersionRef = { vaultId: "vlt_golden", secretId: "sec_golden", version: 1 };
  let owner: Awaited<ReturnType<typeof makeOwner>>;
  let ownerWrap: Uint8Array = new Uint8Array();
  let dek: Uint8Array = new Uint8Array();
  let dekId: Uint8Array = new Uint8Array();

  before(async () => {
    owner = await makeOwner();
    const sealed = await sealVersion(owner, ref, "golden", randomBytes(8), []);
    ownerWrap = sealed.ownerWrap;
    dek = sealed.dek;
    dekId = sealed.dekId;
  });

  function checkParsed(bytes: Uint8Array): void {
    const parsed = okOrKeyhole(() => parseWrap(bytes), ["invalid_envelope"]);
    if (parsed === null) return;
    assert.equal(bytes.length, WRAP_LENGTH);
    const joined = concatBytes(
      WRAP_MAGIC,
      Uint8Array.of(SUITE_V1),
      parsed.recipientFingerprint,
      parsed.enc,
      parsed.ciphertext,
    );
    assert.deepEqual(joined, bytes);
  }

  it("parseWrap on random bytes, with and without the magic", () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 120 }),
      fc
        .uint8Array({ minLength: 90, maxLength: 100 })
        .map((rest) => concatBytes(WRAP_MAGIC, Uint8Array.of(SUITE_V1), rest)),
    );
    fc.assert(fc.property(bytes, checkParsed), { numRuns: RUNS });
  });

  it("a mutated golden wrap is rejected, or unwraps to exactly the original DEK", async () => {
    const recipientId = ownerRecipientId(ref.vaultId);
    await fc.assert(
      fc.asyncProperty(mutations, async (ms) => {
        const changed = mutate(ownerWrap, ms);
        checkParsed(changed);
        const opened = await okOrKeyholeAsync(
          () => unwrapDek(ref, dekId, recipientId, owner.enc, changed),
          ["invalid_envelope", "decrypt_failed"],
        );
        if (opened !== null) {
          assert.deepEqual(changed, ownerWrap);
          assert.deepEqual(opened, dek);
        }
      }),
      { numRuns: slow(8) },
    );
  });
});

describe("grant and agent-key statements (fuzz)", () => {
  let owner: Awaited<ReturnType<typeof makeOwner>>;
  let statement: GrantStatement;
  let sig: Uint8Array = new Uint8Array();
  let agentPk: Uint8Array = new Uint8Array();
  let keySig: Uint8Array = new Uint8Array();

  before(async () => {
    owner = await makeOwner();
    const agent = await makeAgent(owner, "agt_golden");
    const ref = { vaultId: "vlt_golden", secretId: "sec_golden", version: 2 };
    const sealed = await sealVersion(owner, ref, "golden", randomBytes(8), [agent]);
    const grant = sealed.grants.get("agt_golden");
    assert.ok(grant);
    statement = grant.statement;
    sig = grant.sig;
    agentPk = agent.keys.recipient.publicKey;
    keySig = await signAgentKey(owner.signing, {
      vaultId: "vlt_golden",
      agentId: "agt_golden",
      agentPublicKey: agentPk,
      createdAt: 1,
    });
  });

  it("verifyGrant is false for any mutated signature or statement byte field, never a throw", async () => {
    const field = fc.constantFrom(
      "sig",
      "dekId",
      "recipientFingerprint",
      "valueEnvelope",
      "wrap",
      "publicKey",
    );
    await fc.assert(
      fc.asyncProperty(field, mutations, async (which, ms) => {
        const s = { ...statement } as Record<string, unknown>;
        let signature = sig;
        let publicKey = owner.signing.publicKey;
        if (which === "sig") signature = mutate(sig, ms);
        else if (which === "publicKey") publicKey = mutate(publicKey, ms);
        else s[which] = mutate(statement[which as keyof GrantStatement] as Uint8Array, ms);
        const unchanged =
          equal(signature, sig) &&
          equal(publicKey, owner.signing.publicKey) &&
          (which === "sig" ||
            which === "publicKey" ||
            equal(s[which] as Uint8Array, statement[which as keyof GrantStatement] as Uint8Array));
        const ok = await verifyGrant(publicKey, s as unknown as GrantStatement, signature);
        assert.equal(ok, unchanged);
      }),
      { numRuns: slow(4) },
    );
  });

  it("verifyGrant is false, never a throw, for random text fields and host lists", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("vaultId", "secretId", "secretName", "agentId"),
        anyString(40),
        fc.array(anyString(20), { maxLength: 4 }),
        fc.integer({ min: -1, max: 2 ** 53 }),
        async (key, text, hosts, n) => {
          const changed = {
            ...statement,
            [key]: text,
            allowedHosts: hosts,
            version: n,
          } as GrantStatement;
          // u64() throws a RangeError for a negative or unsafe (2^53) version: a caller error of
          // the signer, not parser input, so only in-range versions go to the encoder directly
          // (verifyGrant below gets every n, and must say false, never throw).
          const message =
            n >= 0 && Number.isSafeInteger(n)
              ? await okOrKeyholeAsync(() => encodeGrantMessage(changed), ["invalid_envelope"])
              : null;
          const same =
            text === (statement as unknown as Record<string, unknown>)[key] &&
            n === statement.version &&
            hosts.length === statement.allowedHosts.length &&
            hosts.every((h, i) => h === statement.allowedHosts[i]);
          const ok = await verifyGrant(owner.signing.publicKey, changed, sig);
          assert.equal(ok, same);
          if (message === null) assert.equal(ok, false);
        },
      ),
      { numRuns: slow(4) },
    );
  });

  it("verifyAgentKey is false, never a throw, for mutated keys and signatures", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("pk", "sig", "owner"), mutations, async (which, ms) => {
        const pk = which === "pk" ? mutate(agentPk, ms) : agentPk;
        const s = which === "sig" ? mutate(keySig, ms) : keySig;
        const ownerPk =
          which === "owner" ? mutate(owner.signing.publicKey, ms) : owner.signing.publicKey;
        const ok = await verifyAgentKey(
          ownerPk,
          { vaultId: "vlt_golden", agentId: "agt_golden", agentPublicKey: pk, createdAt: 1 },
          s,
        );
        assert.equal(
          ok,
          equal(pk, agentPk) && equal(s, keySig) && equal(ownerPk, owner.signing.publicKey),
        );
      }),
      { numRuns: slow(4) },
    );
  });

  it("fingerprint and recipient ids accept any input without throwing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), anyString(30), async (bytes, text) => {
        assert.equal((await fingerprint(bytes)).length, 16);
        assert.ok(agentRecipientId(text).startsWith("agent:"));
      }),
      { numRuns: slow(4) },
    );
  });
});

describe("audit entry encoding (fuzz)", () => {
  const field = anyString(40);
  const entry: fc.Arbitrary<AuditFields> = fc.record({
    seq: fc.nat(),
    ts: fc.nat(),
    requestId: field,
    actorType: fc.constantFrom("owner", "agent", "anonymous"),
    actorId: field,
    action: field,
    result: field,
    agentId: field,
    secretId: field,
    secretVersion: fc.nat(),
    clientIp: field,
    userAgent: field,
    detail: field,
  });

  it("encodes any entry, and two entries to the same bytes only when they are equal", () => {
    fc.assert(
      fc.property(entry, entry, (a, b) => {
        const ea = encodeAuditEntry(a);
        const eb = encodeAuditEntry(b);
        // Length prefixes make the encoding injective (up to UTF-8 of lone surrogates, which
        // the WHATWG encoder replaces with U+FFFD, so compare the UTF-8 views of the fields).
        const view = (e: AuditFields) =>
          JSON.stringify(
            Object.values(e).map((v) =>
              typeof v === "string" ? encodeBase64url(new TextEncoder().encode(v)) : v,
            ),
          );
        assert.equal(equal(ea, eb), view(a) === view(b));
        assert.equal(sha256Sync(ea).length, 32);
      }),
      { numRuns: RUNS },
    );
  });

  it("changing one field of an entry changes its encoding", () => {
    fc.assert(
      fc.property(
        entry,
        fc.constantFrom("requestId", "actorId", "action", "detail"),
        anyString(10),
        (a, key, extra) => {
          const changed = { ...a, [key]: `${a[key as keyof AuditFields]}x${extra}` };
          assert.equal(equal(encodeAuditEntry(a), encodeAuditEntry(changed)), false);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
