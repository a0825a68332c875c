/**
 * The owner key file (`$KEYHOLE_HOME/owner.key`, mode 0600 in a 0700 directory): the owner's
 * Ed25519 signing seed and X25519 key material, encrypted with AES-256-GCM under a key from
 * Argon2id(passphrase) (RFC 9106, native `@node-rs/argon2`, never a pure-JS Argon2).
 *
 * The file is JSON for readability, but what is authenticated is binary: the AAD is the header
 * (format, KDF name and version, m/t/p, salt, cipher) encoded with length prefixes, so changing
 * any parameter, e.g. lowering the cost to make a stolen file cheaper to attack, makes the file
 * not open. Reading is strict: exact keys, an allowlist of names and minimum costs.
 *
 * Test-only cost: `KEYHOLE_TEST_ARGON2_FAST=1` writes and accepts m=256 KiB, t=1, and is honoured
 * only when `KEYHOLE_TEST=1` is also set (scripts/test.mjs sets it). Nothing else lowers the cost.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { constants, link, mkdir, open, readFile, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  concatBytes,
  decodeUtf8,
  encodeBase64url,
  KeyholeError,
  lp,
  tryDecodeBase64url,
  u32,
} from "@keyhole/core";
import { type Algorithm, hashRaw, type Version } from "@node-rs/argon2";

const FORMAT = "keyhole-owner-key-v1";
const KDF = "argon2id";
const KDF_VERSION = 0x13;
const CIPHER = "aes-256-gcm";
const SALT_LENGTH = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
const SECRET_LENGTH = 64;
// `Algorithm.Argon2id` and `Version.V0x13` of @node-rs/argon2's index.d.ts: ambient const enums
// cannot be imported under verbatimModuleSyntax. key-file.test.ts checks what they select.
/** @node-rs/argon2's `Algorithm.Argon2id`. */
export const ARGON2ID = 2 as Algorithm;
/** @node-rs/argon2's `Version.V0x13`. */
export const ARGON2_V13 = 1 as Version;

/** Argon2id cost parameters: memory in KiB, passes, lanes. */
export interface KdfParams {
  readonly m: number;
  readonly t: number;
  readonly p: number;
}

/** The parameters every real key file is written with (RFC 9106 §7.4's second choice). */
export const REAL_KDF_PARAMS: KdfParams = { m: 65536, t: 3, p: 1 };
/** Test-only parameters (see the module comment). */
export const FAST_TEST_KDF_PARAMS: KdfParams = { m: 256, t: 1, p: 1 };
const MAX_PARAMS: KdfParams = { m: 4 * 1024 * 1024, t: 64, p: 16 };

/** The owner's private key material. Zero it when done. */
export interface OwnerSecrets {
  /** Ed25519 seed (32 bytes). */
  readonly signSeed: Uint8Array;
  /** Input to core `deriveRecipientKeyPair` for the owner's X25519 key (32 bytes). */
  readonly encIkm: Uint8Array;
}

/** True when the explicit test-only fast Argon2 setting is on (needs both variables). */
export function fastKdfForTests(env: Readonly<Record<string, string | undefined>>): boolean {
  return env.KEYHOLE_TEST === "1" && env.KEYHOLE_TEST_ARGON2_FAST === "1";
}

/** The parameters to write with, given the environment. */
export function kdfParamsFor(env: Readonly<Record<string, string | undefined>>): KdfParams {
  return fastKdfForTests(env) ? FAST_TEST_KDF_PARAMS : REAL_KDF_PARAMS;
}

interface Header extends KdfParams {
  readonly salt: Uint8Array;
}

function encodeAad(header: Header): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/owner-key-file"),
    lp(FORMAT),
    lp(KDF),
    u32(KDF_VERSION),
    u32(header.m),
    u32(header.t),
    u32(header.p),
    lp(header.salt),
    lp(CIPHER),
  );
}

async function deriveKey(passphrase: string, header: Header): Promise<Buffer> {
  // NFC so the same passphrase typed on another keyboard or OS gives the same bytes.
  const password = Buffer.from(passphrase.normalize("NFC"), "utf8");
  try {
    return await hashRaw(password, {
      algorithm: ARGON2ID,
      version: ARGON2_V13,
      memoryCost: header.m,
      timeCost: header.t,
      parallelism: header.p,
      outputLen: 32,
      salt: header.salt,
    });
  } finally {
    password.fill(0);
  }
}

/** Encrypts the owner's secrets into the key file text. */
export async function encryptKeyFile(
  secrets: OwnerSecrets,
  passphrase: string,
  params: KdfParams = REAL_KDF_PARAMS,
): Promise<string> {
  if (secrets.signSeed.length !== 32 || secrets.encIkm.length !== 32) {
    throw new KeyholeError("internal");
  }
  const header: Header = { ...params, salt: randomBytes(SALT_LENGTH) };
  const key = await deriveKey(passphrase, header);
  const nonce = randomBytes(NONCE_LENGTH);
  const plaintext = Buffer.concat([secrets.signSeed, secrets.encIkm]);
  try {
    const cipher = createCipheriv(CIPHER, key, nonce);
    cipher.setAAD(encodeAad(header));
    const ciphertext = Buffer.concat([
      cipher.update(plaintext),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    const file = {
      format: FORMAT,
      kdf: KDF,
      kdf_version: KDF_VERSION,
      m: header.m,
      t: header.t,
      p: header.p,
      salt: encodeBase64url(header.salt),
      cipher: CIPHER,
      nonce: encodeBase64url(nonce),
      ciphertext: encodeBase64url(ciphertext),
    };
    return `${JSON.stringify(file, null, 2)}\n`;
  } finally {
    key.fill(0);
    plaintext.fill(0);
  }
}

const KEYS = [
  "format",
  "kdf",
  "kdf_version",
  "m",
  "t",
  "p",
  "salt",
  "cipher",
  "nonce",
  "ciphertext",
];

function damaged(message = "the owner key file is damaged or not a Keyhole key file"): never {
  throw new KeyholeError("bad_passphrase", message);
}

function parseHeader(
  text: string,
  allowTestParams: boolean,
): { header: Header; nonce: Uint8Array; ciphertext: Uint8Array } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    damaged();
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) damaged();
  const file = json as Record<string, unknown>;
  const keys = Object.keys(file).sort();
  if (keys.length !== KEYS.length || !KEYS.every((k) => keys.includes(k))) damaged();
  if (file.format !== FORMAT || file.kdf !== KDF || file.cipher !== CIPHER) damaged();
  if (file.kdf_version !== KDF_VERSION) damaged();
  const min = allowTestParams ? FAST_TEST_KDF_PARAMS : REAL_KDF_PARAMS;
  const params = { m: file.m, t: file.t, p: file.p };
  for (const name of ["m", "t", "p"] as const) {
    const value = params[name];
    if (!Number.isSafeInteger(value) || (value as number) > MAX_PARAMS[name]) damaged();
    if ((value as number) < min[name]) {
      damaged("the owner key file's Argon2 parameters are below the minimum; refusing to use it");
    }
  }
  const salt = typeof file.salt === "string" ? tryDecodeBase64url(file.salt) : null;
  const nonce = typeof file.nonce === "string" ? tryDecodeBase64url(file.nonce) : null;
  const ciphertext =
    typeof file.ciphertext === "string" ? tryDecodeBase64url(file.ciphertext) : null;
  if (salt?.length !== SALT_LENGTH || nonce?.length !== NONCE_LENGTH) damaged();
  if (ciphertext?.length !== SECRET_LENGTH + TAG_LENGTH) damaged();
  return {
    header: { m: params.m as number, t: params.t as number, p: params.p as number, salt },
    nonce,
    ciphertext,
  };
}

/**
 * Decrypts key file text. A wrong passphrase, a changed header and a damaged file all give
 * `bad_passphrase` (GCM cannot tell them apart, and neither should an attacker).
 */
export async function decryptKeyFile(
  text: string,
  passphrase: string,
  options: { allowTestParams?: boolean } = {},
): Promise<OwnerSecrets> {
  const { header, nonce, ciphertext } = parseHeader(text, options.allowTestParams === true);
  const key = await deriveKey(passphrase, header);
  try {
    const decipher = createDecipheriv(CIPHER, key, nonce);
    decipher.setAAD(encodeAad(header));
    decipher.setAuthTag(ciphertext.subarray(SECRET_LENGTH));
    const plaintext = Buffer.concat([
      decipher.update(ciphertext.subarray(0, SECRET_LENGTH)),
      decipher.final(),
    ]);
    const secrets = {
      signSeed: new Uint8Array(plaintext.subarray(0, 32)),
      encIkm: new Uint8Array(plaintext.subarray(32, 64)),
    };
    plaintext.fill(0);
    return secrets;
  } catch {
    throw new KeyholeError("bad_passphrase");
  } finally {
    key.fill(0);
  }
}

/** Path of the key file in a Keyhole home. */
export function keyFilePath(home: string): string {
  return join(home, "owner.key");
}

/** True when a key file exists (so `init` refuses to overwrite it). */
export async function keyFileExists(home: string): Promise<boolean> {
  try {
    await stat(keyFilePath(home));
    return true;
  } catch {
    return false;
  }
}

/** Creates `dir` (and parents) with mode 0700, and tightens it if it already existed. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.chmod(0o700);
  } finally {
    await handle.close();
  }
}

/**
 * Writes the key file with mode 0600, never replacing an existing one: the text goes to a
 * temporary file first and is then hard-linked into place, which fails atomically with EEXIST
 * if another `init` won the race.
 */
export async function writeNewKeyFile(home: string, text: string): Promise<void> {
  await ensurePrivateDir(home);
  const path = keyFilePath(home);
  const temporary = join(dirname(path), `.owner.key.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temporary, "wx", 0o600);
  try {
    await handle.writeFile(text);
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temporary, path);
  } catch (error) {
    if ((error as { code?: string }).code === "EEXIST") {
      throw new KeyholeError("config_error", `an owner key already exists in ${home}`);
    }
    throw error;
  } finally {
    await rm(temporary, { force: true });
  }
}

/** Reads the key file text; a missing file is a clear `config_error`. */
export async function readKeyFileText(home: string): Promise<string> {
  try {
    const bytes = await readFile(keyFilePath(home));
    return decodeUtf8(bytes);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      throw new KeyholeError("config_error", `no owner key in ${home}; run \`keyhole init\``);
    }
    if (error instanceof KeyholeError) damaged();
    throw error;
  }
}
