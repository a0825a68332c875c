import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import {
  encodeOwnerRequestMessage,
  generateSigningSeed,
  importSigningKey,
  newId,
  parseOwnerAuthorization,
  type SigningKey,
  verify,
} from "@keyhole/core";
import { isLoopbackHost, OwnerClient, parseServerAddress } from "./client.js";

interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let server: Server;
let url: URL;
let key: SigningKey;
const vaultId = newId("vault");
const seen: Seen[] = [];
let reply: { status: number; body: string; headers?: Record<string, string> } = {
  status: 200,
  body: "{}",
};

before(async () => {
  key = await importSigningKey(generateSigningSeed());
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers });
      res.end(reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function client(): OwnerClient {
  return new OwnerClient(url, { vaultId, signingKey: key });
}

async function signatureValid(request: Seen): Promise<boolean> {
  const auth = parseOwnerAuthorization(request.headers.authorization ?? "");
  assert.ok(auth !== null, "has a Keyhole-Owner authorization");
  const message = encodeOwnerRequestMessage({
    vaultId,
    method: request.method,
    pathWithQuery: request.path,
    timestamp: auth.timestamp,
    nonce: auth.nonce,
    bodyHash: createHash("sha256").update(request.body).digest(),
  });
  return verify(key.publicKey, message, auth.signature);
}

test("owner requests are signed over method, path with query and the exact body bytes", async () => {
  reply = { status: 200, body: '{"ok":true}' };
  seen.length = 0;
  const answer = await client().request("PUT", "/v1/owner/secrets/x?a=1&b=%20", { value: "é" });
  assert.deepEqual(answer, { ok: true });
  const request = seen[0] as Seen;
  assert.equal(request.path, "/v1/owner/secrets/x?a=1&b=%20");
  assert.equal(request.headers["content-type"], "application/json");
  assert.equal(await signatureValid(request), true);
  const auth = parseOwnerAuthorization(request.headers.authorization ?? "");
  assert.ok(auth !== null && Math.abs(auth.timestamp - Date.now()) < 5000);
  // The same signature over another body or path does not verify.
  assert.equal(await signatureValid({ ...request, body: Buffer.from('{"value":"e"}') }), false);
  assert.equal(await signatureValid({ ...request, path: "/v1/owner/secrets/y" }), false);
});

test("a request without a body is signed over SHA-256 of the empty string", async () => {
  reply = { status: 200, body: "{}" };
  seen.length = 0;
  await client().request("POST", "/v1/owner/agents/a/revoke");
  const request = seen[0] as Seen;
  assert.equal(request.body.length, 0);
  assert.equal(await signatureValid(request), true);
});

test("every request carries a fresh random nonce", async () => {
  reply = { status: 200, body: "{}" };
  seen.length = 0;
  await client().request("GET", "/v1/owner/secrets");
  await client().request("GET", "/v1/owner/secrets");
  const nonces = seen.map((s) => parseOwnerAuthorization(s.headers.authorization ?? "")?.nonce);
  assert.notDeepEqual(nonces[0], nonces[1]);
});

test("public requests carry no authorization", async () => {
  reply = { status: 200, body: "{}" };
  seen.length = 0;
  await new OwnerClient(url, null).publicRequest("GET", "/v1/info");
  assert.equal(seen[0]?.headers.authorization, undefined);
});

test("error bodies become KeyholeErrors with the server's code and a sanitised message", async () => {
  reply = {
    status: 409,
    body: '{"error":{"code":"conflict","message":"version \\u001b[2J changed"}}',
  };
  await assert.rejects(
    client().request("GET", "/x"),
    (error: { code?: string; message?: string }) => {
      assert.equal(error.code, "conflict");
      assert.equal(error.message, "version ?[2J changed");
      return true;
    },
  );
  reply = {
    status: 429,
    body: '{"error":{"code":"rate_limited","message":"slow"}}',
    headers: { "retry-after": "7" },
  };
  await assert.rejects(
    client().request("GET", "/x"),
    (error: { code?: string; retryAfterSeconds?: number }) => {
      assert.equal(error.code, "rate_limited");
      assert.equal(error.retryAfterSeconds, 7);
      return true;
    },
  );
});

test("a client-side code or a non-JSON error from the server is not taken at its word", async () => {
  reply = { status: 500, body: '{"error":{"code":"bad_passphrase","message":"x"}}' };
  await assert.rejects(client().request("GET", "/x"), /HTTP 500/);
  reply = { status: 502, body: "<html>bad gateway</html>" };
  await assert.rejects(
    client().request("GET", "/x"),
    (e: { code?: string }) => e.code === "network_error",
  );
});

test("a 2xx answer that is not JSON is untrusted_server", async () => {
  reply = { status: 200, body: "not json" };
  await assert.rejects(
    client().request("GET", "/x"),
    (e: { code?: string }) => e.code === "untrusted_server",
  );
});

test("404 is null for requestOrNull and an error for request", async () => {
  reply = { status: 404, body: '{"error":{"code":"not_found","message":"not found"}}' };
  assert.equal(await client().requestOrNull("GET", "/x"), null);
  await assert.rejects(
    client().request("GET", "/x"),
    (e: { code?: string }) => e.code === "not_found",
  );
});

test("an unreachable server is network_error", async () => {
  const closed = new OwnerClient(new URL("http://127.0.0.1:1"), { vaultId, signingKey: key });
  await assert.rejects(
    closed.request("GET", "/x"),
    (e: { code?: string }) => e.code === "network_error",
  );
});

test("plain http is refused to non-loopback hosts unless explicitly allowed", () => {
  assert.throws(
    () => parseServerAddress("http://vault.example.com", false),
    (e: { code?: string }) => e.code === "insecure_transport",
  );
  assert.throws(() => parseServerAddress("http://10.0.0.1:8250", false), /insecure-http/);
  assert.equal(parseServerAddress("http://vault.example.com", true).host, "vault.example.com");
  assert.equal(parseServerAddress("https://vault.example.com", false).protocol, "https:");
  for (const local of [
    "http://127.0.0.1:8250",
    "http://localhost",
    "http://[::1]:1",
    "http://127.9.9.9",
  ]) {
    assert.equal(parseServerAddress(local, false).protocol, "http:");
  }
});

test("server addresses must be scheme://host[:port] only", () => {
  for (const bad of [
    "ftp://x",
    "http://u:p@127.0.0.1",
    "http://127.0.0.1/base",
    "http://127.0.0.1/?q",
    "nonsense",
  ]) {
    assert.throws(
      () => parseServerAddress(bad, true),
      (e: { code?: string }) => e.code === "config_error",
    );
  }
});

test("loopback detection does not trust look-alike names", () => {
  assert.equal(isLoopbackHost("localhost"), true);
  assert.equal(isLoopbackHost("[::1]"), true);
  assert.equal(isLoopbackHost("127.0.0.1"), true);
  assert.equal(isLoopbackHost("127.0.0.1.example.com"), false);
  assert.equal(isLoopbackHost("localhost.example.com"), false);
  assert.equal(isLoopbackHost("::ffff:127.0.0.1"), false);
});
