/**
 * SECURITY-TESTS #10, server half: every route of docs/api.md fuzzed over real HTTP on
 * 127.0.0.1 with malformed JSON, wrong types, huge and empty fields (bodies up to ~300 KiB, past
 * the 256 KiB limit), bad base64url, unicode edge cases, random methods, paths, headers and
 * Authorization values of both schemes, and owner requests carrying a *valid* signature over a
 * garbage body, so that body validation is fuzzed and not only authentication.
 *
 * The property, for every request: an answer within 5 s, a status below 500, a JSON
 * `{"error": {"code"}}` body with a wire code on every 4xx, and `/healthz` still answering after
 * each run. Case counts scale with KEYHOLE_FUZZ_RUNS (`npm run fuzz` sets it high); fast-check
 * prints the seed and the shrunk counterexample on failure.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { encodeBase64url, isWireErrorCode } from "@keyhole/core";
import fc from "fast-check";
import { DEFAULT_LIMITS } from "./auth/rate-limit.js";
import { startTestServer, type TestServer } from "./test-support/harness.js";
import { call, type HttpCall, type HttpResult } from "./test-support/http.js";
import { canary, type TestAgent, TestOwner } from "./test-support/owner.js";

/** Requests per target; each takes a few milliseconds on loopback. */
const RUNS = Math.max(1, Number(process.env.KEYHOLE_FUZZ_RUNS ?? 2000));
const runs = (divisor: number): number => Math.max(20, Math.ceil(RUNS / divisor));

/** No single request may take longer than this. */
const REQUEST_DEADLINE_MS = 5_000;

/** Every route of docs/api.md, with `:param` placeholders. */
const ROUTES: readonly (readonly [string, string])[] = [
  ["GET", "/healthz"],
  ["GET", "/readyz"],
  ["GET", "/v1/info"],
  ["POST", "/v1/init"],
  ["GET", "/v1/agent/self"],
  ["GET", "/v1/agent/secrets"],
  ["GET", "/v1/agent/secrets/:name"],
  ["GET", "/v1/owner/agents"],
  ["POST", "/v1/owner/agents"],
  ["GET", "/v1/owner/agents/:name"],
  ["POST", "/v1/owner/agents/:name/rotate"],
  ["POST", "/v1/owner/agents/:name/revoke"],
  ["GET", "/v1/owner/secrets"],
  ["GET", "/v1/owner/secrets/:name"],
  ["PUT", "/v1/owner/secrets/:name"],
  ["GET", "/v1/owner/secrets/:name/history"],
  ["DELETE", "/v1/owner/secrets/:name"],
  ["GET", "/v1/owner/grants"],
  ["POST", "/v1/owner/grants"],
  ["DELETE", "/v1/owner/grants/:name/:name"],
  ["GET", "/v1/owner/audit"],
  ["GET", "/v1/owner/audit/checkpoint"],
];
const OWNER_ROUTES = ROUTES.filter(([, path]) => path.startsWith("/v1/owner/"));
const AGENT_ROUTES = ROUTES.filter(([, path]) => path.startsWith("/v1/agent/"));

/** Methods llhttp parses (an unknown method is refused by Node itself, before the app). */
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "PURGE"];

/** Percent-encodes every byte, so any byte string (overlong UTF-8, NUL, lone surrogates) fits. */
function percentEncode(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `%${b.toString(16).padStart(2, "0").toUpperCase()}`).join("");
}

/** Byte sequences that are not valid UTF-8, or are valid but awkward. */
const AWKWARD_UTF8: readonly (readonly number[])[] = [
  [0xc0, 0xaf], // overlong "/"
  [0xe0, 0x80, 0xaf], // overlong "/", three bytes
  [0xed, 0xa0, 0x80], // CESU-8 lone surrogate
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0xff],
  [0x00],
  [0xe2, 0x80, 0xae], // U+202E right-to-left override
  [0xef, 0xbb, 0xbf], // BOM
  [0x2e, 0x2e], // ".."
];

/** Strings a JSON field could carry that trip up validators. */
const nastyString = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "\u0000",
    "\uD800",
    "\uDC00x",
    "a\u202Eb",
    "\uFEFFdb",
    "db\u0000",
    "İ",
    "ﬀ",
    "..",
    "../db",
    "%2e%2e",
    "AA=",
    "A",
    "+/+/",
    "AAAA====",
    "kh1_",
    "agt_",
    "sec_AAAAAAAAAAAAAAAAAAAAAA",
    "vlt_\u0000",
    "9007199254740993",
    "-0",
    "1e400",
  ),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  fc.uint8Array({ maxLength: 120 }).map(encodeBase64url),
  fc
    .uint8Array({ maxLength: 40 })
    .map((b) => `${encodeBase64url(b)}${["=", "==", " ", "\n", "+", "/"][b.length % 6]}`),
);

/** Sizes around the 256 KiB body limit and a string of that many characters. */
const hugeString = fc
  .constantFrom(0, 1, 4096, 255 * 1024, 256 * 1024 - 40, 256 * 1024, 300 * 1024)
  .chain((n) => fc.constantFrom("a", "\u00e9", "\u0000", "A").map((c) => c.repeat(n)));

/** A value of any JSON type, or a deeply nested one. */
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: nastyString },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      null,
      true,
      false,
      0,
      -1,
      1.5,
      2 ** 53,
      -(2 ** 63),
      1e308,
      [],
      {},
      [null],
      { "": 1 },
      { __proto__: 1 },
    ),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: hugeString },
);

/** A body: nothing, raw bytes, malformed or deeply nested JSON, or a valid-shaped template with a field replaced. */
function bodyArbitrary(templates: readonly Record<string, unknown>[]): fc.Arbitrary<unknown> {
  const template = fc.constantFrom(...templates);
  const replaced = fc
    .tuple(template, fc.nat(), nastyValue, fc.constantFrom("replace", "delete", "add", "nest"))
    .map(([t, i, value, how]) => {
      const keys = Object.keys(t);
      const key = keys[i % keys.length] ?? "x";
      const out: Record<string, unknown> = { ...t };
      if (how === "replace") out[key] = value;
      else if (how === "delete") delete out[key];
      else if (how === "add") out[`x${i}`] = value;
      else out[key] = [out[key], value];
      return JSON.stringify(out);
    });
  // Only templates that carry grants (a filter that never passes would spin forever).
  const withGrants = templates.filter((t) => Array.isArray(t.grants));
  const grantsReplaced = fc
    .tuple(
      fc.constantFrom(...(withGrants.length > 0 ? withGrants : templates)),
      nastyValue,
      fc.nat(),
    )
    .map(([t, value, i]) => {
      const grant = {
        agent_id: "agt_AAAAAAAAAAAAAAAAAAAAAA",
        secret_id: "sec_AAAAAAAAAAAAAAAAAAAAAA",
        version: 1,
        wrap: "",
        issued_at: 0,
        not_after: 0,
        allowed_hosts: ["a.com"],
        sig: "",
      } as Record<string, unknown>;
      const key = Object.keys(grant)[i % 8] as string;
      grant[key] = value;
      return JSON.stringify({ ...t, grants: [grant] });
    });
  const malformed = fc.oneof(
    template.chain((t) => {
      const text = JSON.stringify(t);
      return fc.nat(text.length).map((cut) => text.slice(0, cut));
    }),
    fc.constantFrom("{", "[", '{"a":', '{"a":1,}', "{'a':1}", "NaN", "\u0000", '{"a":1}{"a":1}'),
    fc.string({ maxLength: 60 }),
  );
  const rawBytes = fc
    .array(
      fc.oneof(
        fc.constantFrom(...AWKWARD_UTF8).map((b) => Uint8Array.from(b)),
        fc.uint8Array({ maxLength: 8 }),
      ),
      { maxLength: 10 },
    )
    .map((parts) => Buffer.concat(parts));
  const deep = fc
    .constantFrom(10, 1_000, 50_000, 140_000)
    .chain((n) =>
      fc.constantFrom(
        `${"[".repeat(n)}${"]".repeat(n)}`,
        `${'{"a":'.repeat(n / 10)}1${"}".repeat(n / 10)}`,
      ),
    );
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant("{}") },
    { weight: 6, arbitrary: replaced },
    { weight: 2, arbitrary: grantsReplaced },
    { weight: 2, arbitrary: malformed },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: rawBytes },
    { weight: 1, arbitrary: deep },
  );
}

/** A path segment: a real name, a plausible one, or percent-encoded junk. */
function segmentArbitrary(names: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...names) },
    { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/) },
    {
      weight: 2,
      arbitrary: fc
        .array(
          fc.oneof(fc.constantFrom(...AWKWARD_UTF8), fc.uint8Array({ minLength: 1, maxLength: 4 })),
          { maxLength: 4 },
        )
        .map((parts) => percentEncode(Uint8Array.from(parts.flatMap((p) => Array.from(p))))),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        ".",
        "..",
        "%2e%2e",
        "%2F",
        "%",
        "%G0",
        "%E0%A4%A",
        "a".repeat(129),
        "a".repeat(5000),
        "-x",
        "db;x",
        "db?",
      ),
    },
  );
}

/** A query string: none, a known parameter with a junk value, repeats or unknowns. */
const queryArbitrary = fc.oneof(
  { weight: 3, arbitrary: fc.constant("") },
  {
    weight: 3,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.constantFrom("after", "limit", "agent", "secret", "since", "x", "", "limit[]"),
          fc.oneof(
            fc.constantFrom("0", "1", "-1", "1000", "1001", "1e3", "0x10", "9007199254740993", ""),
            fc.constantFrom("db", "ci", "%00", "%E0", "%C0%AF", "%ZZ", "a%20b", "%2e%2e"),
            fc.nat().map(String),
          ),
        ),
        { minLength: 1, maxLength: 4 },
      )
      .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join("&")}`),
  },
  { weight: 1, arbitrary: fc.constantFrom("?", "?&", "?=", "?a", "??", "?limit=1#frag") },
);

/** A route with its parameters filled, a query, or a random path. */
function pathArbitrary(
  routes: readonly (readonly [string, string])[],
  names: readonly string[],
): fc.Arbitrary<{ method: string; path: string }> {
  const segment = segmentArbitrary(names);
  const routed = fc
    .tuple(
      fc.constantFrom(...routes),
      fc.array(segment, { minLength: 2, maxLength: 2 }),
      queryArbitrary,
    )
    .map(([[method, template], [a, b], query]) => {
      let n = 0;
      const path = template.replace(/:name/g, () => (n++ === 0 ? a : b) as string);
      return { method, path: `${path}${query}` };
    });
  const wrongMethod = fc
    .tuple(routed, fc.constantFrom(...METHODS))
    .map(([r, method]) => ({ method, path: r.path }));
  const randomPath = fc
    .tuple(
      fc.constantFrom(...METHODS),
      fc.oneof(
        fc.webPath(),
        fc.constantFrom(
          "//v1/info",
          "/v1/../v1/info",
          "/V1/INFO",
          "/v1/info/",
          "/v1/owner",
          "/%00",
        ),
      ),
    )
    .map(([method, path]) => ({ method, path: path.startsWith("/") ? path : `/${path}` }));
  return fc.oneof(
    { weight: 6, arbitrary: routed },
    { weight: 2, arbitrary: wrongMethod },
    { weight: 1, arbitrary: randomPath },
  );
}

/** A header value Node's client will send (latin1, no CR/LF). */
const headerText = (maxLength: number) =>
  fc.string({
    unit: fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
      fc.constant("\t"),
    ),
    maxLength,
  });

/** Random headers beside Authorization. */
const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    "content-type": fc.oneof(
      fc.constantFrom(
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "APPLICATION/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json, text/plain",
      ),
      headerText(40),
    ),
    "user-agent": headerText(300),
    "x-forwarded-for": fc.constantFrom("1.2.3.4", "::1", "garbage", "1.2.3.4, 5.6.7.8", "\u00ff"),
    "x-request-id": headerText(80),
    accept: headerText(20),
  },
  { requiredKeys: [] },
);

/** Authorization values of both schemes that are wrong in some way. */
const badAuthorization = fc.oneof(
  headerText(120),
  fc
    .tuple(headerText(30), fc.constantFrom(".", "..", ""), headerText(50))
    .map(([a, dot, b]) => `Keyhole ${a}${dot}${b}`),
  fc
    .tuple(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 36 }))
    .map(([a, b]) => `Keyhole ${encodeBase64url(a)}.${encodeBase64url(b)}`),
  fc
    .tuple(
      fc.oneof(fc.nat().map(String), fc.constantFrom("0", "-1", "1e3", "99999999999999999")),
      fc.uint8Array({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 70 }),
    )
    .map(
      ([ts, nonce, sig]) => `Keyhole-Owner ${ts}.${encodeBase64url(nonce)}.${encodeBase64url(sig)}`,
    ),
  fc.constantFrom("Keyhole", "Keyhole ", "Keyhole-Owner", "Bearer x", "keyhole a.b", "Basic Og=="),
);

/** Sends one request with a deadline; a hang fails the property instead of stalling the run. */
async function send(url: string, c: HttpCall): Promise<HttpResult> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${REQUEST_DEADLINE_MS} ms`)),
      REQUEST_DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([call(url, c), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The property every answer must hold. */
function checkAnswer(c: HttpCall, res: HttpResult): void {
  const what = `${c.method} ${c.path.slice(0, 120)} -> ${res.status} ${res.text.slice(0, 200)}`;
  assert.ok(res.status >= 200 && res.status < 500, what);
  if (c.method === "HEAD") return;
  assert.ok(res.json !== null && typeof res.json === "object", `not JSON: ${what}`);
  if (res.status >= 400) {
    const code = (res.json as { error?: { code?: unknown } }).error?.code;
    assert.ok(isWireErrorCode(code), `no error code: ${what}`);
  }
}

describe("fuzzing every route over HTTP", () => {
  let t: TestServer;
  let owner: TestOwner;
  let agent: TestAgent;
  let templates: Record<string, unknown>[] = [];
  const names = ["db", "ci", "other", "nobody"];

  before(async () => {
    // Failures are not throttled here, so every fuzzed request reaches the parsers behind the
    // gate (the default limits would turn most of them into an early 429).
    t = await startTestServer({ limits: { ...DEFAULT_LIMITS, maxFailures: 1_000_000_000 } });
    owner = await TestOwner.initialized(t);
    await owner.putSecret("db", canary());
    await owner.putSecret("other", canary());
    agent = await owner.createAgent("ci", ["db"]);
    const minted = await owner.mintAgent("fresh");
    const create = await owner.agentCreateBody(minted, ["db"]);
    const { id: _id, name: _name, expires_at: _expires, allowed_cidrs: _cidrs, ...rotate } = create;
    const put = await owner.secretPutBody("db", canary());
    const grant = await owner.grantUpload(await owner.openSecret("db"), minted);
    const init = {
      bootstrap_code: "0".repeat(32),
      owner_sign_pk: encodeBase64url(owner.signKey.publicKey),
      owner_enc_pk: encodeBase64url(owner.enc.publicKey),
      proof: encodeBase64url(new Uint8Array(64)),
    };
    templates = [create, rotate, put, { ...grant, max_uses: 3 }, init];
  });

  after(async () => {
    const health = await send(t.url, { method: "GET", path: "/healthz" });
    assert.equal(health.status, 200);
    await t.close();
  });

  /** Runs one property of requests, then checks that the server still answers. */
  async function fuzz(
    request: fc.Arbitrary<Promise<HttpCall> | HttpCall>,
    numRuns: number,
  ): Promise<Map<number, number>> {
    let slowest = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (make) => {
        const c = await make;
        const started = performance.now();
        const res = await send(t.url, c);
        slowest = Math.max(slowest, performance.now() - started);
        checkAnswer(c, res);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }),
      { numRuns },
    );
    assert.ok(slowest < REQUEST_DEADLINE_MS, `slowest request took ${slowest} ms`);
    const health = await send(t.url, { method: "GET", path: "/healthz" });
    assert.equal(health.status, 200, "the server stopped answering /healthz");
    return statuses;
  }

  it("any route, method, path, headers and body without credentials or with wrong ones", async () => {
    const request = fc
      .tuple(
        pathArbitrary(ROUTES, names),
        bodyArbitrary(templates),
        extraHeaders,
        fc.option(badAuthorization, { nil: undefined }),
      )
      .map(([{ method, path }, body, headers, authorization]) => ({
        method,
        path,
        body,
        headers: authorization === undefined ? headers : { ...headers, authorization },
      }));
    await fuzz(request, runs(2));
  });

  it("agent routes with a valid agent token and junk paths, queries, headers and bodies", async () => {
    const request = fc
      .tuple(pathArbitrary(AGENT_ROUTES, names), bodyArbitrary(templates), extraHeaders)
      .map(([{ method, path }, body, headers]) => ({
        method,
        path,
        body,
        headers: { ...headers, authorization: agent.header },
      }));
    await fuzz(request, runs(4));
  });

  it("owner routes with a valid agent token (the wrong role)", async () => {
    const request = fc
      .tuple(pathArbitrary(OWNER_ROUTES, names), bodyArbitrary(templates))
      .map(([{ method, path }, body]) => ({
        method,
        path,
        body,
        headers: { authorization: agent.header },
      }));
    await fuzz(request, runs(8));
  });

  it("POST /v1/init with junk bodies on an initialised server", async () => {
    const request = fc
      .tuple(bodyArbitrary(templates.slice(-1)), extraHeaders)
      .map(([body, headers]) => ({ method: "POST", path: "/v1/init", body, headers }));
    await fuzz(request, runs(8));
  });

  it("a raw non-ASCII byte in the request target gets a JSON 400", async () => {
    const latin1 = fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c));
    const request = fc
      .tuple(fc.constantFrom(...ROUTES), latin1)
      .map(([[method, path], c]) => ({ method, path: `${path.replace(/:name/g, "db")}${c}` }));
    await fuzz(request, 20);
  });

  it("owner routes with a valid signature over a garbage body, path and query", async () => {
    const request = fc
      .tuple(
        pathArbitrary(OWNER_ROUTES, names),
        bodyArbitrary(templates),
        extraHeaders,
        fc.boolean(),
      )
      .map(async ([{ method, path }, body, headers, keepType]) => {
        // Keep the content type valid most of the time so the body reaches the validator.
        const h = keepType ? { ...headers, "content-type": "application/json" } : headers;
        const authorization = await owner.authorization(method, path, body);
        return { method, path, body, headers: { ...h, authorization } };
      });
    const statuses = await fuzz(request, runs(2));
    // The signatures must pass for most requests, or only authentication was fuzzed.
    const total = [...statuses.values()].reduce((a, b) => a + b, 0);
    assert.ok((statuses.get(401) ?? 0) < total / 2, `mostly 401: ${[...statuses]}`);
    assert.ok((statuses.get(400) ?? 0) > 0, `no 400 at all: ${[...statuses]}`);
  });
});
