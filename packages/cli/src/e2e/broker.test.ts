// `keyhole broker` end to end: the real executable, a real `keyhole server`, and real local
// upstreams on 127.0.0.1 that check the credential. The client holds only a capability; the
// upstream must see the real secret, and nothing the owner did not allow may reach anyone else.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { findNeedles } from "../test-support/needles.js";
import {
  agentEnv,
  assertBrokerError,
  type Broker,
  bearerRoute,
  grantHosts,
  owner,
  parseEnvLines,
  refusedBroker,
  secretNeedles,
  setUpWorld,
  startBroker,
  stopAll,
  type World,
} from "./broker.test.helper.js";
import { BIN, runProcess } from "./harness.js";
import {
  closedPort,
  open,
  readUntil,
  request,
  selfSignedCert,
  startUpstream,
  streamedBody,
  type Upstream,
} from "./upstream.test.helper.js";

const SECRET = "upstream-token";
const MiB = 1024 * 1024;
const ROUTE_VARS = ["UP_BASE_URL", "UP_API_KEY", "DOWN_API_KEY", "TLS_API_KEY"];

let world: World;
let up: Upstream; // allowed by the grant
let other: Upstream; // not in the grant's hosts
let tls: Upstream; // allowed, but its certificate is self-signed
let broker: Broker;
let otherBroker: Broker | undefined;

before(async () => {
  const value = `sk-live-${randomBytes(24).toString("base64url")}`;
  up = await startUpstream(value);
  other = await startUpstream(value);
  const down = await closedPort();
  world = await setUpWorld({ secret: SECRET, value, agent: "proxy-bot", hosts: [up.host] });
  tls = await startUpstream(value, await selfSignedCert(world.ctx.dir));
  await grantHosts(world, "proxy-bot", SECRET, [up.host, `127.0.0.1:${down}`, tls.host]);
  broker = await startBroker(
    world,
    [
      bearerRoute("up", up.url, SECRET),
      bearerRoute("down", `http://127.0.0.1:${down}`, SECRET),
      bearerRoute("tls", tls.url, SECRET),
    ],
    ROUTE_VARS,
  );
});
after(async () => {
  await stopAll(world, [broker?.live, otherBroker?.live], [up?.close, other?.close, tls?.close]);
});

const cap = () => broker.env.UP_API_KEY as string;
const base = () => broker.env.UP_BASE_URL as string;
const bearer = (capability = cap()) => ({ authorization: `Bearer ${capability}` });

test("the broker prints each route's variables: base URL on the broker, a capability", () => {
  assert.match(broker.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(base(), `${broker.url}/up`);
  for (const name of ["UP_API_KEY", "DOWN_API_KEY", "TLS_API_KEY"])
    assert.match(broker.env[name] ?? "", /^khc_[A-Za-z0-9_-]{43}$/, name);
  assert.ok(!broker.live.stdout().includes(world.value));
});

test("a plain call: the upstream sees the real secret, the client only ever sent the capability", async () => {
  const body = Buffer.from('{"prompt":"hello"}');
  const reply = await request(`${base()}/echo-json?a=1&b=two`, {
    method: "POST",
    headers: { ...bearer(), "content-type": "application/json" },
    body,
  });
  assert.equal(reply.status, 200, reply.body.toString());
  assert.match(String(reply.headers["content-type"]), /^application\/json/);
  const echo = JSON.parse(reply.body.toString()) as Record<string, unknown>;
  assert.deepEqual(echo, {
    method: "POST",
    path: "/echo-json",
    query: "a=1&b=two",
    length: body.length,
    sha256: createHash("sha256").update(body).digest("hex"),
  });
  const seen = up.requests.at(-1);
  assert.equal(seen?.authorized, true);
  assert.equal(seen?.headers.authorization, `Bearer ${world.value}`);
  assert.ok(!JSON.stringify(seen?.headers).includes(cap()), "the capability reached the upstream");
  // Any route also accepts the capability in x-keyhole-capability, which never goes upstream.
  const alt = await request(`${base()}/echo-json`, { headers: { "x-keyhole-capability": cap() } });
  assert.equal(alt.status, 200, alt.body.toString());
  assert.equal(up.requests.at(-1)?.headers["x-keyhole-capability"], undefined);
  assert.ok(!JSON.stringify(up.requests.at(-1)?.headers).includes(cap()));
});

test("server-sent events pass through unbuffered: event 1 arrives while the upstream holds the rest", async () => {
  const res = await open(`${base()}/sse?n=3&delay=20`, { headers: bearer() });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
  const iterator = (res as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  // The upstream writes event 2 only after releaseSse(): a buffering broker never shows event 1.
  const first = await readUntil(iterator, "", /data: event 1\n\n/, 5000);
  assert.equal(first, "data: event 1\n\n");
  assert.deepEqual(up.sse, { written: 1, ended: false });
  up.releaseSse();
  const all = await readUntil(iterator, first, /data: event 3\n\n/, 5000);
  assert.equal(all, "data: event 1\n\ndata: event 2\n\ndata: event 3\n\n");
});

test("a 20 MiB request body streams up and a 20 MiB response streams down, intact", async () => {
  const { body, digest } = streamedBody(20 * MiB);
  const upload = await request(`${base()}/echo-json`, {
    method: "PUT",
    headers: { ...bearer(), "content-type": "application/octet-stream" },
    body,
    timeoutMs: 60_000,
  });
  assert.equal(upload.status, 200, upload.body.toString());
  const echo = JSON.parse(upload.body.toString()) as { length: number; sha256: string };
  assert.equal(echo.length, 20 * MiB);
  assert.equal(echo.sha256, digest);
  const download = await request(`${base()}/big?size=${20 * MiB}`, {
    headers: bearer(),
    timeoutMs: 60_000,
  });
  assert.equal(download.status, 200);
  assert.equal(download.body.length, 20 * MiB);
  assert.equal(
    createHash("sha256").update(download.body).digest("hex"),
    download.headers["x-body-sha256"],
  );
});

test("a route to a host outside the grant's --hosts gets 403 forbidden; that host gets nothing", async () => {
  otherBroker = await startBroker(
    world,
    [bearerRoute("other", other.url, SECRET)],
    ["OTHER_API_KEY"],
  );
  const reply = await request(`${otherBroker.url}/other/echo-json`, {
    headers: bearer(otherBroker.env.OTHER_API_KEY),
  });
  assertBrokerError(reply, 403, "forbidden");
  assert.equal(other.requests.length, 0);
  await otherBroker.live.stop("SIGTERM");
});

test("a redirect to a host outside the grant gets 502 upstream_redirect_refused; that host gets nothing", async () => {
  const to = encodeURIComponent(`${other.url}/echo-json`);
  const reply = await request(`${base()}/redirect?to=${to}`, { headers: bearer() });
  assertBrokerError(reply, 502, "upstream_redirect_refused");
  assert.equal(other.requests.length, 0);
  // A redirect that stays on an allowed host is passed back, not followed.
  const local = await request(`${base()}/redirect?to=%2Fecho-json`, { headers: bearer() });
  assert.equal(local.status, 302);
  assert.equal(local.headers.location, "/echo-json");
});

test("a missing or wrong capability gets 401 bad_capability and never reaches the upstream", async () => {
  const count = up.requests.length;
  const url = `${base()}/echo-json`;
  assertBrokerError(await request(url), 401, "bad_capability");
  const forged = `khc_${randomBytes(32).toString("base64url")}`;
  assertBrokerError(await request(url, { headers: bearer(forged) }), 401, "bad_capability");
  assertBrokerError(
    await request(url, { headers: { "x-keyhole-capability": forged } }),
    401,
    "bad_capability",
  );
  // Another route's capability, and the real secret itself, are not this route's capability.
  assertBrokerError(
    await request(url, { headers: bearer(broker.env.TLS_API_KEY) }),
    401,
    "bad_capability",
  );
  assertBrokerError(await request(url, { headers: bearer(world.value) }), 401, "bad_capability");
  assert.equal(up.requests.length, count);
});

test("an unknown route gets 404 not_found; an upstream that is down gets 502 upstream_unreachable", async () => {
  assertBrokerError(
    await request(`${broker.url}/nope/echo-json`, { headers: bearer() }),
    404,
    "not_found",
  );
  const down = `${broker.url}/down/echo-json`;
  const reply = await request(down, {
    headers: bearer(broker.env.DOWN_API_KEY),
    timeoutMs: 10_000,
  });
  assertBrokerError(reply, 502, "upstream_unreachable");
});

test("a credential echoed by the upstream is redacted from the body and the headers", async () => {
  const reply = await request(`${base()}/leak`, { headers: bearer() });
  assert.equal(reply.status, 200);
  assert.equal(up.requests.at(-1)?.authorized, true, "the upstream did get the secret");
  const text = reply.body.toString("utf8");
  assert.ok(!text.includes(world.value), "the secret came back in the body");
  assert.ok(!String(reply.headers["x-echo"]).includes(world.value), "…or in a header");
  assert.match((JSON.parse(text) as { echo: string }).echo, /^Bearer \S+$/);
});

test("upstream TLS is verified: a self-signed upstream gets 502 upstream_tls_failed and no request", async () => {
  const reply = await request(`${broker.url}/tls/echo-json`, {
    headers: bearer(broker.env.TLS_API_KEY),
    timeoutMs: 10_000,
  });
  assertBrokerError(reply, 502, "upstream_tls_failed");
  assert.equal(tls.requests.length, 0, "the upstream saw a request, so it saw the secret");
  // The server notes the failed handshake a moment after the broker has answered.
  for (let waited = 0; tls.tlsErrors === 0 && waited < 2000; waited += 50)
    await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(tls.tlsErrors > 0, "the broker never even tried the TLS upstream");
});

type AuditEntry = { action: string; result: string; actor_type: string };

async function secretReads(): Promise<number> {
  const args = ["audit", "--agent", "proxy-bot", "--secret", SECRET, "--limit", "100000", "--json"];
  const entries = JSON.parse((await owner(world, args)).stdout) as AuditEntry[];
  return entries.filter(
    (e) => e.action === "secret.read" && e.result === "ok" && e.actor_type === "agent",
  ).length;
}

test("each proxied call is one secret read in the vault's audit log and one call-log line", async () => {
  const before = await secretReads();
  const marker = randomBytes(12).toString("hex");
  for (const n of [1, 2, 3]) {
    const reply = await request(`${base()}/echo-json/audit-${n}?q=query-${marker}`, {
      method: "POST",
      headers: { ...bearer(), "x-marker": `header-${marker}` },
      body: Buffer.from(`body-${marker}`),
    });
    assert.equal(reply.status, 200);
  }
  assert.equal(await secretReads(), before + 3, "not one vault read per call");
  for (const n of [1, 2, 3])
    await broker.live.waitFor(
      new RegExp(
        `keyhole: broker route=up method=POST host=${up.host.replaceAll(".", "\\.")} ` +
          `path=/echo-json/audit-${n} status=200 ms=\\d`,
      ),
      5000,
    );
  const logs = broker.live.stderr();
  for (const leak of [`header-${marker}`, `body-${marker}`, `query-${marker}`, cap()])
    assert.ok(!logs.includes(leak), `the broker's log holds ${leak.slice(0, 12)}…`);
  assert.deepEqual(
    findNeedles(Buffer.from(logs + broker.live.stdout()), await secretNeedles(world)),
    [],
  );
});

test("the broker's /proc/<pid>/environ and cmdline hold no token, seed or secret", {
  skip: process.platform !== "linux" && "needs Linux /proc",
}, async () => {
  const pid = broker.live.child.pid;
  assert.ok(pid !== undefined);
  const environ = await readFile(`/proc/${pid}/environ`);
  const cmdline = await readFile(`/proc/${pid}/cmdline`);
  assert.ok(cmdline.includes("broker"), "read the wrong process");
  assert.deepEqual(findNeedles(Buffer.concat([environ, cmdline]), await secretNeedles(world)), []);
  assert.ok(!environ.includes("KEYHOLE_TOKEN="));
});

test("the broker refuses to start when NODE_OPTIONS, exec arguments or the env inject code", async () => {
  const dir = world.ctx.dir;
  const cjs = join(dir, "harvester.cjs");
  const mjs = join(dir, "harvester.mjs");
  const marker = (kind: string) => join(dir, `harvested-${kind}`);
  const script = `require("node:fs").writeFileSync(process.env.MARKER, "loaded");\n`;
  await writeFile(cjs, script);
  await writeFile(mjs, `import fs from "node:fs";\nfs.writeFileSync(process.env.MARKER, "x");\n`);
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ["require", [], { NODE_OPTIONS: `--require ${cjs}` }, /NODE_OPTIONS/],
    ["r", [], { NODE_OPTIONS: `-r ${cjs}` }, /NODE_OPTIONS/],
    ["import", [], { NODE_OPTIONS: `--import ${mjs}` }, /NODE_OPTIONS/],
    ["inspect", [], { NODE_OPTIONS: "--inspect=127.0.0.1:0" }, /NODE_OPTIONS/],
    ["execarg", ["--require", cjs], {}, /--require|execArgv|exec arg/],
    ["tls", [], { NODE_TLS_REJECT_UNAUTHORIZED: "0" }, /NODE_TLS_REJECT_UNAUTHORIZED/],
    ["preload", [], { LD_PRELOAD: join(dir, "missing.so") }, /LD_PRELOAD/],
  ];
  // Every case runs; the messages that do not name the variable or flag are reported together.
  const unnamed: string[] = [];
  for (const [kind, nodeArgs, env, named] of cases) {
    const route = bearerRoute("up", up.url, SECRET);
    const run = await refusedBroker(world, route, nodeArgs, { ...env, MARKER: marker(kind) });
    const line = run.stderr.split("\n").find((l) => l.startsWith("keyhole: ")) ?? "";
    if (!named.test(line)) unnamed.push(`${kind}: ${run.stderr.trim()}`);
  }
  assert.deepEqual(unnamed, [], "the refusal does not name the variable or flag");
  // The injected code did run (the attack was live), and the broker still refused.
  for (const kind of ["require", "r", "import", "execarg"]) await stat(marker(kind));
});

test("start-up refusals: KEYHOLE_TOKEN, a non-loopback --listen, an ungranted secret, plain http", async () => {
  const route = bearerRoute("up", up.url, SECRET);
  const file = ["--token-file", world.tokenFile];
  const plain = "--allow-plain-http-upstream";
  const ungranted = bearerRoute("up", up.url, "never-granted");
  // Each refusal must be for its own reason: the line names the cause.
  const cases: [string, string[], Record<string, string>, number[], RegExp][] = [
    ["token", [plain, "--route", route], { KEYHOLE_TOKEN: world.token }, [1, 2], /KEYHOLE_TOKEN/],
    [
      "0.0.0.0",
      [...file, plain, "--route", route, "--listen", "0.0.0.0:0"],
      {},
      [1, 2],
      /loopback/,
    ],
    ["ungranted", [...file, plain, "--route", ungranted], {}, [1], /never-granted/],
    ["no flag", [...file, "--route", route], {}, [1, 2], /https/],
    [
      "no KEYHOLE_TEST",
      [...file, plain, "--route", route],
      { KEYHOLE_TEST: "" },
      [1, 2],
      /KEYHOLE_TEST/,
    ],
  ];
  for (const [label, args, env, codes, cause] of cases) {
    const listen = args.includes("--listen") ? [] : ["--listen", "127.0.0.1:0"];
    const run = await runProcess(process.execPath, [BIN, "broker", ...listen, ...args], {
      env: agentEnv(world, env),
      timeoutMs: 10_000,
    });
    const why = `${label}: exit ${run.code} ${run.signal}: ${run.stderr}`;
    assert.ok(codes.includes(run.code ?? -1), why);
    assert.match(run.stderr, new RegExp(`^keyhole: .*${cause.source}`, "m"), why);
    assert.doesNotMatch(run.stderr, /listening on/, label);
    const output = Buffer.from(run.stdout + run.stderr);
    assert.ok(!output.includes("khc_"), `${label}: a capability was printed`);
    assert.deepEqual(findNeedles(output, await secretNeedles(world)), [], label);
  }
});

test("--agent-env gets the variables (mode 0600) instead of stdout; --log gets the call log", async () => {
  const envFile = join(world.ctx.dir, "broker.env");
  const logFile = join(world.ctx.dir, "broker.log");
  const quiet = await startBroker(
    world,
    [bearerRoute("up", up.url, SECRET)],
    [],
    ["--agent-env", envFile, "--log", logFile],
  );
  try {
    assert.equal((await stat(envFile)).mode & 0o777, 0o600);
    const env = parseEnvLines(await readFile(envFile, "utf8"));
    assert.equal(env.UP_BASE_URL, `${quiet.url}/up`);
    assert.doesNotMatch(quiet.live.stdout(), /UP_API_KEY|khc_/);
    const reply = await request(`${quiet.url}/up/echo-json/logged`, {
      headers: bearer(env.UP_API_KEY),
    });
    assert.equal(reply.status, 200);
    let log = "";
    for (let waited = 0; !log.includes("logged") && waited < 3000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      log = await readFile(logFile, "utf8").catch(() => "");
    }
    assert.match(log, /broker route=up method=GET host=\S+ path=\/echo-json\/logged status=200 /);
    assert.doesNotMatch(quiet.live.stderr(), /broker route=/);
  } finally {
    await quiet.live.stop("SIGTERM");
  }
});

test("a rotated secret is used on the very next call (no cache)", async () => {
  const before = await request(`${base()}/echo-json`, { headers: bearer() });
  assert.equal(before.status, 200);
  const value = `sk-rotated-${randomBytes(24).toString("base64url")}`;
  await owner(world, ["secret", "set", SECRET], value);
  up.expected = value;
  world.value = value;
  const reply = await request(`${base()}/echo-json`, { headers: bearer() });
  assert.equal(reply.status, 200, `the upstream refused: ${reply.body.toString()}`);
  assert.equal(up.requests.at(-1)?.headers.authorization, `Bearer ${value}`);
});

test("after agent revoke, the next call gets 502 secret_unavailable and no upstream request", async () => {
  const count = up.requests.length;
  await owner(world, ["agent", "revoke", "proxy-bot"]);
  const reply = await request(`${base()}/echo-json`, { headers: bearer() });
  assertBrokerError(reply, 502, "secret_unavailable");
  assert.equal(up.requests.length, count);
});

test("the broker stops on SIGTERM with exit 0", async () => {
  const exit = await broker.live.stop("SIGTERM");
  assert.deepEqual(exit, { code: 0, signal: null });
});
