import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { call } from "./test-support/http.js";
import { canary, TestOwner } from "./test-support/owner.js";

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));

interface Child {
  readonly process: ChildProcess;
  readonly url: string;
  readonly bootstrapCode: string | null;
}

/** Starts `main.js` and waits for its "listening" line, and for the bootstrap code when due. */
function startChild(dataDir: string, expectCode: boolean): Promise<Child> {
  const child = spawn(
    process.execPath,
    [MAIN, "--data-dir", dataDir, "--port", "0", "--log-level", "error"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  return new Promise((resolve, reject) => {
    let stderr = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 10_000);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr += chunk;
      const url = /keyhole server listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stderr)?.[1];
      const code = /bootstrap code: ([0-9a-f]{32})\n/.exec(stderr)?.[1] ?? null;
      if (url === undefined || (expectCode && code === null)) return;
      clearTimeout(timer);
      resolve({ process: child, url, bootstrapCode: code });
    });
    child.on("exit", (status) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${status}: ${stderr}`));
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

describe("durability", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "keyhole-durable-"));
  const children: ChildProcess[] = [];
  after(() => {
    for (const child of children) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("an acknowledged secret write survives kill -9 of the server", async () => {
    const first = await startChild(dataDir, true);
    children.push(first.process);
    assert.match(first.bootstrapCode ?? "", /^[0-9a-f]{32}$/);
    const owner = await TestOwner.create(first.url, Date.now);
    assert.equal((await owner.init(first.bootstrapCode ?? "")).status, 200);
    const value = canary();
    const written = await owner.putSecret("durable", value);
    assert.equal(written.version, 1);

    first.process.kill("SIGKILL");
    await exited(first.process);

    const second = await startChild(dataDir, false);
    children.push(second.process);
    assert.equal(second.bootstrapCode, null, "an initialised vault prints no code");
    owner.url = second.url;
    const opened = await owner.openSecret("durable");
    assert.equal(opened.version, 1);
    assert.equal(opened.id, written.id);

    second.process.kill("SIGTERM");
    assert.equal(await exited(second.process), 0, "SIGTERM closes cleanly");
  });

  it("refuses to start without --data-dir (exit 2)", async () => {
    const child = spawn(process.execPath, [MAIN], { stdio: "ignore" });
    assert.equal(await exited(child), 2);
  });

  it("answers health checks from the child", async () => {
    const child = await startChild(dataDir, false);
    children.push(child.process);
    assert.equal((await call(child.url, { method: "GET", path: "/healthz" })).status, 200);
    child.process.kill("SIGINT");
    assert.equal(await exited(child.process), 0);
  });
});
