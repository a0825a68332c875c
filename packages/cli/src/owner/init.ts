/**
 * Creating the owner: keys made here, never on the server. The key file is written (encrypted,
 * never overwriting one) before the server is claimed, so a crash cannot leave a server bound to
 * keys nobody has; if the claim fails, the new key file is removed again.
 */
import { rm } from "node:fs/promises";
import {
  deriveRecipientKeyPair,
  encodeBase64url,
  encodeInitProofMessage,
  generateSigningSeed,
  importSigningKey,
  isKeyholeError,
  isWireErrorCode,
  KeyholeError,
  randomBytes,
  sign,
  zeroize,
} from "@keyhole/core";
import { OwnerClient } from "./client.js";
import { configExists, newConfig, type OwnerConfig, writeConfig } from "./config.js";
import {
  encryptKeyFile,
  type KdfParams,
  keyFileExists,
  keyFilePath,
  writeNewKeyFile,
} from "./key-file.js";
import { parseInfo, parseInitResponse } from "./views.js";

/** The shortest passphrase `init` accepts. */
export const MIN_PASSPHRASE_LENGTH = 8;

/** Refuses to touch a home that already has an owner. */
export async function assertNoOwner(home: string): Promise<void> {
  if ((await keyFileExists(home)) || (await configExists(home))) {
    throw new KeyholeError(
      "config_error",
      `an owner already exists in ${home}; refusing to overwrite it (use another KEYHOLE_HOME)`,
    );
  }
}

/** Reads `/v1/info` and fails unless the server is waiting for its owner. */
export async function fetchUninitializedInfo(url: URL): Promise<ReturnType<typeof parseInfo>> {
  const info = parseInfo(await new OwnerClient(url, null).publicRequest("GET", "/v1/info"));
  if (info.initialized) {
    throw new KeyholeError(
      "already_initialized",
      `the server at ${url.origin} already has an owner`,
    );
  }
  return info;
}

/** Everything `init` needs, already gathered from flags, environment and prompts. */
export interface InitOptions {
  readonly home: string;
  readonly url: URL;
  readonly bootstrapCode: string;
  readonly passphrase: string;
  readonly kdfParams: KdfParams;
}

/** Makes the owner's keys, claims the server with the bootstrap code and writes the config. */
export async function initOwner(options: InitOptions): Promise<OwnerConfig> {
  if (options.passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new KeyholeError(
      "usage",
      `the passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`,
    );
  }
  await assertNoOwner(options.home);
  const info = await fetchUninitializedInfo(options.url);
  const signSeed = generateSigningSeed();
  const encIkm = randomBytes(32);
  let signingKey: Awaited<ReturnType<typeof importSigningKey>>;
  let encPublicKey: Uint8Array;
  let keyFileText: string;
  try {
    signingKey = await importSigningKey(signSeed);
    encPublicKey = (await deriveRecipientKeyPair(encIkm)).publicKey;
    keyFileText = await encryptKeyFile({ signSeed, encIkm }, options.passphrase, options.kdfParams);
  } finally {
    zeroize(signSeed, encIkm);
  }
  const proof = await sign(
    signingKey,
    encodeInitProofMessage(
      info.vault_id,
      options.bootstrapCode,
      signingKey.publicKey,
      encPublicKey,
    ),
  );
  await writeNewKeyFile(options.home, keyFileText);
  let auditPk: string;
  try {
    const response = parseInitResponse(
      await new OwnerClient(options.url, null).publicRequest("POST", "/v1/init", {
        bootstrap_code: options.bootstrapCode,
        owner_sign_pk: encodeBase64url(signingKey.publicKey),
        owner_enc_pk: encodeBase64url(encPublicKey),
        proof: encodeBase64url(proof),
      }),
    );
    if (response.vault_id !== info.vault_id || response.audit_pk !== info.audit_pk) {
      throw new KeyholeError("untrusted_server", "the server changed its vault id or audit key");
    }
    auditPk = response.audit_pk;
  } catch (error) {
    // Only a clear refusal proves the server was not claimed; after anything else (a broken
    // connection, a strange answer) the keys are kept rather than risk an orphaned server.
    if (isKeyholeError(error) && isWireErrorCode(error.code)) {
      await rm(keyFilePath(options.home), { force: true });
    }
    throw error;
  }
  const config = newConfig({
    addr: options.url.origin,
    vaultId: info.vault_id,
    ownerSignPk: encodeBase64url(signingKey.publicKey),
    ownerEncPk: encodeBase64url(encPublicKey),
    auditPk,
  });
  await writeConfig(options.home, config);
  return config;
}
