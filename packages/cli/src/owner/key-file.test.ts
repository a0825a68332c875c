import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { randomBytes } from "@keyhole/core";
import { hash } from "@node-rs/argon2";
import {
  ARGON2_V13,
  ARGON2ID,
  decryptKeyFile,
  encryptKeyFile,
  FAST_TEST_KDF_PARAMS,
  fastKdfForTests,
  kdfParamsFor,
  keyFilePath,
  REAL_KDF_PARAMS,
  readKeyFileText,
  writeNewKeyFile,
} from "./key-file.js";

const PASS = "correct horse battery staple";
const secrets = { signSeed: randomBytes(32), encIkm: randomBytes(32) };
let fastFile = "";
let dir = "";

before(async () => {
  fastFile = await encryptKeyFile(secrets, PASS, FAST_TEST_KDF_PARAMS);
  dir = await mkdtemp(join(tmpdir(), "keyhole-keyfile-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fast = { allowTestParams: true };

function edit(text: string, change: (file: Record<string, unknown>) => void): string {
  const file = JSON.parse(text) as Record<string, unknown>;
  change(file);
  return JSON.stringify(file);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: { code?: string }) => error.code === code);
}

test("a key file written with the real Argon2id parameters opens with the right passphrase", async () => {
  const text = await encryptKeyFile(secrets, PASS);
  const file = JSON.parse(text) as Record<string, unknown>;
  assert.deepEqual([file.m, file.t, file.p], [65536, 3, 1]);
  assert.equal(file.kdf, "argon2id");
  const opened = await decryptKeyFile(text, PASS);
  assert.deepEqual(opened.signSeed, secrets.signSeed);
  assert.deepEqual(opened.encIkm, secrets.encIkm);
});

test("the key file holds neither key in the clear", async () => {
  const hex = Buffer.from(fastFile).toString("utf8");
  for (const key of [secrets.signSeed, secrets.encIkm]) {
    assert.ok(!hex.includes(Buffer.from(key).toString("base64url")));
    assert.ok(!hex.includes(Buffer.from(key).toString("hex")));
  }
});

test("a wrong passphrase is bad_passphrase", async () => {
  await rejectsWith(decryptKeyFile(fastFile, `${PASS}!`, fast), "bad_passphrase");
});

test("the passphrase is NFC-normalised, so composed and decomposed input agree", async () => {
  const text = await encryptKeyFile(secrets, "caf\u00e9 passphrase", FAST_TEST_KDF_PARAMS);
  const opened = await decryptKeyFile(text, "cafe\u0301 passphrase", fast);
  assert.deepEqual(opened.signSeed, secrets.signSeed);
});

test("changing any header field makes the file not open (the header is the AAD)", async () => {
  const changes: [string, (f: Record<string, unknown>) => void][] = [
    [
      "m",
      (f) => {
        f.m = (f.m as number) + 8;
      },
    ],
    [
      "t",
      (f) => {
        f.t = (f.t as number) + 1;
      },
    ],
    [
      "p",
      (f) => {
        f.p = 2;
      },
    ],
    [
      "salt",
      (f) => {
        f.salt = Buffer.from(randomBytes(16)).toString("base64url");
      },
    ],
    [
      "nonce",
      (f) => {
        f.nonce = Buffer.from(randomBytes(12)).toString("base64url");
      },
    ],
    [
      "ciphertext",
      (f) => {
        const ct = Buffer.from(f.ciphertext as string, "base64url");
        ct[0] = (ct[0] as number) ^ 1;
        f.ciphertext = ct.toString("base64url");
      },
    ],
  ];
  for (const [field, change] of changes) {
    await assert.rejects(
      decryptKeyFile(edit(fastFile, change), PASS, fast),
      (error: { code?: string }) => {
        assert.equal(error.code, "bad_passphrase", field);
        return true;
      },
    );
  }
});

test("unknown formats, names, extra or missing keys are refused before any KDF runs", async () => {
  const bad = [
    edit(fastFile, (f) => {
      f.format = "keyhole-owner-key-v2";
    }),
    edit(fastFile, (f) => {
      f.kdf = "argon2i";
    }),
    edit(fastFile, (f) => {
      f.kdf_version = 16;
    }),
    edit(fastFile, (f) => {
      f.cipher = "aes-128-gcm";
    }),
    edit(fastFile, (f) => {
      f.extra = 1;
    }),
    edit(fastFile, (f) => {
      delete f.salt;
    }),
    edit(fastFile, (f) => {
      f.m = "256";
    }),
    edit(fastFile, (f) => {
      f.salt = `${f.salt as string}=`;
    }),
    "not json",
    "[]",
  ];
  for (const text of bad) await rejectsWith(decryptKeyFile(text, PASS, fast), "bad_passphrase");
});

test("parameters below the real minimum are refused unless the test-only setting is on", async () => {
  await assert.rejects(decryptKeyFile(fastFile, PASS), /below the minimum/);
  const weak = edit(fastFile, (f) => {
    f.m = 64;
  });
  await assert.rejects(decryptKeyFile(weak, PASS, fast), /below the minimum/);
  const huge = edit(fastFile, (f) => {
    f.m = 2 ** 31;
  });
  await rejectsWith(decryptKeyFile(huge, PASS, fast), "bad_passphrase");
});

test("the fast Argon2 setting needs both KEYHOLE_TEST=1 and KEYHOLE_TEST_ARGON2_FAST=1", () => {
  assert.equal(fastKdfForTests({ KEYHOLE_TEST: "1", KEYHOLE_TEST_ARGON2_FAST: "1" }), true);
  assert.equal(fastKdfForTests({ KEYHOLE_TEST_ARGON2_FAST: "1" }), false);
  assert.equal(fastKdfForTests({ KEYHOLE_TEST: "1" }), false);
  assert.deepEqual(kdfParamsFor({ KEYHOLE_TEST_ARGON2_FAST: "1" }), REAL_KDF_PARAMS);
});

test("the numeric Argon2 constants select Argon2id version 0x13", async () => {
  const phc = await hash("x", {
    algorithm: ARGON2ID,
    version: ARGON2_V13,
    memoryCost: 256,
    timeCost: 1,
  });
  assert.match(phc, /^\$argon2id\$v=19\$/);
});

test("the key file is written with mode 0600 in a 0700 directory and never overwritten", async () => {
  const home = join(dir, "home-a");
  await writeNewKeyFile(home, fastFile);
  assert.equal((await stat(keyFilePath(home))).mode & 0o777, 0o600);
  assert.equal((await stat(home)).mode & 0o777, 0o700);
  await assert.rejects(writeNewKeyFile(home, "other"), /already exists/);
  assert.equal(await readFile(keyFilePath(home), "utf8"), fastFile);
  assert.equal(await readKeyFileText(home), fastFile);
});

test("a missing key file says to run init", async () => {
  await assert.rejects(readKeyFileText(join(dir, "nowhere")), /keyhole init/);
});

test("a key file that is not UTF-8 is reported as damaged", async () => {
  const home = join(dir, "home-b");
  await writeNewKeyFile(home, "x");
  await writeFile(keyFilePath(home), Buffer.from([0xff, 0xfe]));
  await rejectsWith(readKeyFileText(home), "bad_passphrase");
});
