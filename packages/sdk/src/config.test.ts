import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { isKeyholeError } from "@keyhole/core";
import { DEFAULT_ADDR, isLoopbackHost, resolveConfig, SDK_VERSION } from "./config.js";

const TOKEN_FILE = { tokenFile: "/run/keyhole/token" };

function rejects(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(isKeyholeError(error));
    assert.equal(error.code, code);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  });
}

describe("resolveConfig", () => {
  test("defaults to the local server, a 10 s timeout, no cache and the SDK user agent", () => {
    const config = resolveConfig(TOKEN_FILE, {});
    assert.equal(config.addr, DEFAULT_ADDR);
    assert.equal(config.timeoutMs, 10_000);
    assert.equal(config.cacheTtl, 0);
    assert.equal(config.userAgent, `keyhole-sdk/${SDK_VERSION}`);
  });

  test("the SDK version in the user agent is the package's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    assert.equal(SDK_VERSION, pkg.version);
  });

  test("reads KEYHOLE_ADDR, and an option beats it", () => {
    assert.equal(
      resolveConfig(TOKEN_FILE, { KEYHOLE_ADDR: "https://vault.example.com/" }).addr,
      "https://vault.example.com",
    );
    assert.equal(
      resolveConfig(
        { ...TOKEN_FILE, addr: "https://other.example.com:8443/base/" },
        { KEYHOLE_ADDR: "https://vault.example.com" },
      ).addr,
      "https://other.example.com:8443/base",
    );
  });

  test("prefers KEYHOLE_TOKEN_FILE over KEYHOLE_TOKEN, and options over both", () => {
    const env = { KEYHOLE_TOKEN_FILE: "/env/file", KEYHOLE_TOKEN: "kh1_x" };
    assert.deepEqual(resolveConfig({}, env).token, {
      kind: "file",
      path: "/env/file",
      fromEnv: true,
    });
    assert.deepEqual(resolveConfig({}, { KEYHOLE_TOKEN: "kh1_x" }).token, { kind: "env" });
    assert.deepEqual(resolveConfig({ token: "kh1_y" }, env).token, { kind: "text", text: "kh1_y" });
    assert.deepEqual(resolveConfig({ tokenFile: "/opt" }, env).token, {
      kind: "file",
      path: "/opt",
      fromEnv: false,
    });
  });

  test("an empty environment variable counts as unset", () => {
    assert.deepEqual(resolveConfig({}, { KEYHOLE_TOKEN_FILE: "", KEYHOLE_TOKEN: "kh1_x" }).token, {
      kind: "env",
    });
    assert.equal(resolveConfig(TOKEN_FILE, { KEYHOLE_ADDR: "" }).addr, DEFAULT_ADDR);
  });

  test("no token anywhere is config_error naming both environment variables", () => {
    rejects(() => resolveConfig({}, {}), "config_error", /KEYHOLE_TOKEN_FILE.*KEYHOLE_TOKEN/);
  });

  test("token and tokenFile together are config_error", () => {
    rejects(() => resolveConfig({ token: "kh1_x", tokenFile: "/f" }, {}), "config_error");
  });

  test("plain http to a non-loopback host is insecure_transport", () => {
    for (const addr of [
      "http://example.com",
      "http://10.0.0.1:8250",
      "http://[::2]",
      "http://127.example.com",
    ]) {
      rejects(() => resolveConfig({ ...TOKEN_FILE, addr }, {}), "insecure_transport");
    }
    rejects(
      () => resolveConfig(TOKEN_FILE, { KEYHOLE_ADDR: "http://example.com" }),
      "insecure_transport",
    );
  });

  test("plain http to loopback, https anywhere, or http with allowInsecureHttp is accepted", () => {
    for (const addr of [
      "http://127.0.0.1:8250",
      "http://127.9.8.7",
      "http://localhost:1",
      "http://[::1]:8250",
      "https://example.com",
    ]) {
      assert.equal(resolveConfig({ ...TOKEN_FILE, addr }, {}).addr, new URL(addr).origin);
    }
    assert.equal(
      resolveConfig({ ...TOKEN_FILE, addr: "http://example.com", allowInsecureHttp: true }, {})
        .addr,
      "http://example.com",
    );
  });

  test("a malformed address, or one with credentials, a query or a fragment, is config_error without echoing it", () => {
    for (const addr of [
      "not a url",
      "ftp://example.com",
      "https://user:kh1_secret@example.com",
      "https://example.com/?q=1",
      "https://example.com/#f",
    ]) {
      assert.throws(
        () => resolveConfig({ ...TOKEN_FILE, addr }, {}),
        (error: unknown) =>
          isKeyholeError(error) &&
          error.code === "config_error" &&
          !error.message.includes("kh1_secret"),
      );
    }
  });

  test("a bad timeout, cache ttl or user agent is config_error", () => {
    rejects(() => resolveConfig({ ...TOKEN_FILE, timeoutMs: 0 }, {}), "config_error");
    rejects(() => resolveConfig({ ...TOKEN_FILE, timeoutMs: Number.NaN }, {}), "config_error");
    rejects(() => resolveConfig({ ...TOKEN_FILE, cacheTtl: -1 }, {}), "config_error");
    rejects(
      () => resolveConfig({ ...TOKEN_FILE, userAgent: "a\r\nx-injected: 1" }, {}),
      "config_error",
    );
  });

  test("a userAgent is prepended to the SDK's product token", () => {
    assert.equal(
      resolveConfig({ ...TOKEN_FILE, userAgent: "my-agent/2.0" }, {}).userAgent,
      `my-agent/2.0 keyhole-sdk/${SDK_VERSION}`,
    );
  });
});

describe("isLoopbackHost", () => {
  test("accepts localhost, 127.0.0.0/8 and ::1 only", () => {
    for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.255.255.255", "[::1]"]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of [
      "128.0.0.1",
      "127.0.0",
      "127.0.0.256",
      "localhost.example.com",
      "[::2]",
      "0.0.0.0",
      "127.0.0.1.nip.io",
    ]) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });
});
