import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { inspect } from "node:util";
import { isKeyholeError } from "@keyhole/core";
import { SDK_VERSION } from "./config.js";
import { Vault } from "./index.js";
import {
  closedPort,
  errorReply,
  FakeServer,
  type FakeVault,
  hangingHandler,
  honestHandler,
} from "./test-support/fake-server.js";
import {
  makeAgent,
  makeOwner,
  makeSecretVersion,
  type TestAgent,
  type TestOwner,
} from "./test-support/fixtures.js";

const ENV_KEYS = ["KEYHOLE_ADDR", "KEYHOLE_TOKEN", "KEYHOLE_TOKEN_FILE"] as const;
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
for (const key of ENV_KEYS) delete process.env[key];

let owner: TestOwner;
let agent: TestAgent;
let world: FakeVault;
let server: FakeServer;
let dir: string;

before(async () => {
  owner = await makeOwner();
  agent = await makeAgent(owner);
  world = {
    agents: [agent],
    secrets: [
      await makeSecretVersion(owner, {
        name: "openai-api-key",
        value: "sk-test-1234",
        recipients: [agent],
      }),
      await makeSecretVersion(owner, {
        name: "db.password",
        value: "hunter2",
        recipients: [agent],
        version: 4,
      }),
      await makeSecretVersion(owner, {
        name: "binary",
        value: Uint8Array.of(0xff, 0xfe, 0x00),
        recipients: [agent],
      }),
    ],
  };
  server = await FakeServer.start(honestHandler(world));
  dir = await mkdtemp(join(tmpdir(), "keyhole-sdk-"));
});

afterEach(() => {
  for (const key of ENV_KEYS) delete process.env[key];
  server.handler = honestHandler(world);
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
  for (const key of ENV_KEYS) if (savedEnv[key] !== undefined) process.env[key] = savedEnv[key];
});

function vault(options: ConstructorParameters<typeof Vault>[0] = {}): Vault {
  return new Vault({ addr: server.url, token: agent.tokenText, ...options });
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isKeyholeError(error), `not a KeyholeError: ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

describe("Vault happy path", () => {
  test("get fetches, verifies and decrypts a granted secret", async () => {
    assert.equal(await vault().get("openai-api-key"), "sk-test-1234");
  });

  test("use passes the value's bytes and returns the callback's result", async () => {
    const result = await vault().use(
      "db.password",
      (bytes) => new TextDecoder().decode(bytes).length,
    );
    assert.equal(result, 7);
  });

  test("use passes the owner-signed facts of the grant: version and allowed hosts", async () => {
    const info = await vault().use("db.password", (_bytes, details) => details);
    assert.deepEqual(
      { ...info, allowedHosts: [...info.allowedHosts] },
      { name: "db.password", version: 4, notAfter: 0, allowedHosts: ["api.example.com"] },
    );
    assert.ok(Object.isFrozen(info) && Object.isFrozen(info.allowedHosts));
  });

  test("list returns the granted names and versions", async () => {
    const names = await vault().list();
    assert.deepEqual(
      [...names].sort((a, b) => a.name.localeCompare(b.name)),
      [
        { name: "binary", version: 1 },
        { name: "db.password", version: 4 },
        { name: "openai-api-key", version: 1 },
      ],
    );
  });

  test("each request carries the agent's Authorization header and the SDK user agent", async () => {
    const before = server.requests.length;
    await vault({ userAgent: "my-agent/1.0" }).get("openai-api-key");
    const request = server.requests[before];
    assert.equal(request?.path, "/v1/agent/secrets/openai-api-key");
    assert.equal(request?.headers.authorization, agent.authorization);
    assert.equal(request?.headers["user-agent"], `my-agent/1.0 keyhole-sdk/${SDK_VERSION}`);
  });

  test("on Node the Vault uses its node:http transport, not the global fetch", async () => {
    const original = globalThis.fetch;
    let fetched = 0;
    globalThis.fetch = (() => {
      fetched++;
      return Promise.reject(new Error("fetch must not be used on Node"));
    }) as typeof fetch;
    try {
      assert.equal(await vault().get("openai-api-key"), "sk-test-1234");
    } finally {
      globalThis.fetch = original;
    }
    assert.equal(fetched, 0);
  });

  test("a value that is not UTF-8 is refused by get and readable through use", async () => {
    await rejectsWith(vault().get("binary"), "usage");
    assert.deepEqual(await vault().use("binary", (b) => [...b]), [0xff, 0xfe, 0x00]);
  });

  test("a name that is not a valid secret name is refused before any request", async () => {
    const before = server.requests.length;
    for (const name of ["", "../owner/secrets", "a/b", ".hidden", "x".repeat(129)]) {
      await rejectsWith(vault().get(name), "usage");
    }
    assert.equal(server.requests.length, before);
  });
});

describe("Vault.use zeroes the value", () => {
  test("every byte is 0 after the callback resolves", async () => {
    let kept: Uint8Array | undefined;
    await vault().use("openai-api-key", async (bytes) => {
      kept = bytes;
      assert.equal(new TextDecoder().decode(bytes), "sk-test-1234");
      await new Promise((resolve) => setTimeout(resolve, 5));
    });
    assert.ok(kept !== undefined && kept.length === 12);
    assert.ok(kept.every((b) => b === 0));
  });

  test("every byte is 0 after the callback throws, and the error is passed on", async () => {
    let kept: Uint8Array | undefined;
    const boom = new Error("callback failed");
    await assert.rejects(
      vault().use("openai-api-key", (bytes) => {
        kept = bytes;
        throw boom;
      }),
      (error) => error === boom,
    );
    assert.ok(kept !== undefined && kept.length === 12);
    assert.ok(kept.every((b) => b === 0));
  });

  test("every byte is 0 after the callback's promise rejects", async () => {
    let kept: Uint8Array | undefined;
    await assert.rejects(
      vault().use("openai-api-key", async (bytes) => {
        kept = bytes;
        throw new Error("async failure");
      }),
      /async failure/,
    );
    assert.ok(kept?.every((b) => b === 0));
  });
});

describe("Vault configuration", () => {
  test("reads the token from KEYHOLE_TOKEN_FILE and the address from KEYHOLE_ADDR", async () => {
    const file = join(dir, "token-env");
    await writeFile(file, `${agent.tokenText}\n`, { mode: 0o600 });
    process.env.KEYHOLE_TOKEN_FILE = file;
    process.env.KEYHOLE_ADDR = server.url;
    assert.equal(await new Vault().get("openai-api-key"), "sk-test-1234");
  });

  test("a token file readable by others still works", async () => {
    const file = join(dir, "token-0644");
    await writeFile(file, agent.tokenText);
    await chmod(file, 0o644);
    assert.equal(
      await new Vault({ addr: server.url, tokenFile: file }).get("openai-api-key"),
      "sk-test-1234",
    );
  });

  test("reads the token from KEYHOLE_TOKEN", async () => {
    process.env.KEYHOLE_TOKEN = agent.tokenText;
    process.env.KEYHOLE_ADDR = server.url;
    assert.equal(await new Vault().get("openai-api-key"), "sk-test-1234");
  });

  test("KEYHOLE_TOKEN_FILE is preferred to KEYHOLE_TOKEN", async () => {
    const file = join(dir, "token-preferred");
    await writeFile(file, agent.tokenText, { mode: 0o600 });
    process.env.KEYHOLE_TOKEN_FILE = file;
    process.env.KEYHOLE_TOKEN = "kh1_not-a-token";
    assert.equal(await new Vault({ addr: server.url }).get("openai-api-key"), "sk-test-1234");
  });

  test("without any token the constructor throws config_error naming the environment variables", () => {
    process.env.KEYHOLE_ADDR = server.url;
    assert.throws(
      () => new Vault(),
      (error: unknown) =>
        isKeyholeError(error) &&
        error.code === "config_error" &&
        error.message.includes("KEYHOLE_TOKEN_FILE") &&
        error.message.includes("KEYHOLE_TOKEN"),
    );
  });

  test("the token is read at first use, not in the constructor", async () => {
    const file = join(dir, "token-later");
    const later = new Vault({ addr: server.url, tokenFile: file });
    await rejectsWith(later.get("openai-api-key"), "config_error");
    await writeFile(file, agent.tokenText, { mode: 0o600 });
    assert.equal(await later.get("openai-api-key"), "sk-test-1234");
  });

  test("a file that does not hold a token is invalid_token", async () => {
    const file = join(dir, "token-bad");
    await writeFile(file, "kh1_this-is-not-a-token\n", { mode: 0o600 });
    await rejectsWith(
      new Vault({ addr: server.url, tokenFile: file }).get("openai-api-key"),
      "invalid_token",
    );
    await writeFile(file, "x".repeat(5000), { mode: 0o600 });
    await rejectsWith(
      new Vault({ addr: server.url, tokenFile: file }).get("openai-api-key"),
      "invalid_token",
    );
  });

  test("a token with a bad checksum is invalid_token and nothing is sent", async () => {
    const before = server.requests.length;
    const last = agent.tokenText.at(-1) === "A" ? "B" : "A";
    await rejectsWith(
      vault({ token: agent.tokenText.slice(0, -1) + last }).get("openai-api-key"),
      "invalid_token",
    );
    assert.equal(server.requests.length, before);
  });

  test("plain http to a non-loopback host is refused, to loopback or with allowInsecureHttp allowed", async () => {
    assert.throws(
      () => new Vault({ addr: "http://example.com", token: agent.tokenText }),
      (error: unknown) => isKeyholeError(error) && error.code === "insecure_transport",
    );
    process.env.KEYHOLE_ADDR = "http://example.com:8250";
    assert.throws(
      () => new Vault({ token: agent.tokenText }),
      (error: unknown) => isKeyholeError(error) && error.code === "insecure_transport",
    );
    assert.equal(
      new Vault({ addr: "http://example.com", token: agent.tokenText, allowInsecureHttp: true })
        .addr,
      "http://example.com",
    );
    assert.equal(await vault({ addr: server.url }).get("openai-api-key"), "sk-test-1234");
  });
});

describe("Vault errors from the server and the network", () => {
  test("401 is unauthenticated", async () => {
    const stranger = await makeAgent(owner);
    await rejectsWith(
      vault({ token: stranger.tokenText }).get("openai-api-key"),
      "unauthenticated",
    );
  });

  test("404 is not_found", async () => {
    await rejectsWith(vault().get("not-granted"), "not_found");
  });

  test("429 is rate_limited with retryAfterSeconds", async () => {
    server.handler = () => errorReply("rate_limited", { "retry-after": "12" });
    await assert.rejects(vault().get("openai-api-key"), (error: unknown) => {
      assert.ok(isKeyholeError(error));
      assert.equal(error.code, "rate_limited");
      assert.equal(error.retryAfterSeconds, 12);
      return true;
    });
  });

  test("500 is internal", async () => {
    server.handler = () => errorReply("internal");
    await rejectsWith(vault().get("openai-api-key"), "internal");
    await rejectsWith(vault().list(), "internal");
  });

  test("an unknown error code is untrusted_server", async () => {
    server.handler = () => ({
      status: 418,
      json: { error: { code: "teapot", message: "short and stout" } },
    });
    await rejectsWith(vault().get("openai-api-key"), "untrusted_server");
  });

  test("a closed port is network_error", async () => {
    const port = await closedPort();
    await rejectsWith(
      vault({ addr: `http://127.0.0.1:${port}` }).get("openai-api-key"),
      "network_error",
    );
  });

  test("a server that never answers is network_error after timeoutMs", async () => {
    server.handler = hangingHandler();
    const started = Date.now();
    await rejectsWith(vault({ timeoutMs: 100 }).get("openai-api-key"), "network_error");
    assert.ok(Date.now() - started < 3000);
  });
});

describe("Vault rendering", () => {
  test("inspect, JSON and String show the address only", async () => {
    const v = vault();
    await v.get("openai-api-key");
    assert.equal(String(v), `Vault(${server.url})`);
    assert.equal(JSON.stringify(v), JSON.stringify({ addr: server.url }));
    assert.equal(inspect(v, { showHidden: true, depth: 20 }), `Vault { addr: '${server.url}' }`);
    const raw = inspect(v, { showHidden: true, depth: 20, customInspect: false });
    assert.ok(!raw.includes(agent.tokenText) && !raw.includes("Uint8Array"), raw);
    assert.deepEqual(Object.keys(v), []);
  });
});

describe("Vault cache", () => {
  test("with no cacheTtl every call asks the server", async () => {
    const v = vault();
    const before = server.requests.length;
    await v.get("openai-api-key");
    await v.get("openai-api-key");
    assert.equal(server.requests.length - before, 2);
  });

  test("with cacheTtl the ciphertext answer is reused until it expires", async () => {
    const v = vault({ cacheTtl: 200 });
    const before = server.requests.length;
    assert.equal(await v.get("openai-api-key"), "sk-test-1234");
    assert.equal(await v.get("openai-api-key"), "sk-test-1234");
    assert.equal(server.requests.length - before, 1);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(await v.get("openai-api-key"), "sk-test-1234");
    assert.equal(server.requests.length - before, 2);
  });
});

describe("Vault.close", () => {
  test("a closed Vault refuses further calls", async () => {
    const v = vault();
    await v.get("openai-api-key");
    v.close();
    await rejectsWith(v.get("openai-api-key"), "usage");
  });
});
