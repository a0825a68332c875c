/**
 * An owner session: the config, the keys unlocked from the key file and a signing client. The
 * owner's public keys always come from the local key file, never from the server, so a server
 * that swaps the owner key gains nothing. Versions seen during the session are pinned in the
 * config when it ends, so a later answer with a lower version is a detected rollback.
 */
import {
  deriveRecipientKeyPair,
  encodeBase64url,
  importSigningKey,
  KeyholeError,
  type RecipientKeyPair,
  type SigningKey,
  zeroize,
} from "@keyhole/core";
import { type Io, promptHidden } from "../io.js";
import { DEFAULT_ADDR, OwnerClient, parseServerAddress } from "./client.js";
import {
  keyholeHome,
  type OwnerConfig,
  readConfig,
  updateConfig,
  withoutSecret,
  withVersionSeen,
} from "./config.js";
import { decryptKeyFile, fastKdfForTests, readKeyFileText } from "./key-file.js";

/** How to reach the server: `--insecure-http` (or `KEYHOLE_INSECURE_HTTP=1`) and an address. */
export interface ConnectOptions {
  readonly insecureHttp: boolean;
}

/** An unlocked owner: keys from the local key file, the pinned config, a signing client. */
export class OwnerSession {
  readonly io: Io;
  readonly home: string;
  readonly vaultId: string;
  readonly signingKey: SigningKey;
  readonly encKeys: RecipientKeyPair;
  readonly client: OwnerClient;
  readonly #seen: Map<string, number>;
  readonly #forgotten = new Set<string>();
  #config: OwnerConfig;

  constructor(fields: {
    io: Io;
    home: string;
    config: OwnerConfig;
    signingKey: SigningKey;
    encKeys: RecipientKeyPair;
    client: OwnerClient;
  }) {
    this.io = fields.io;
    this.home = fields.home;
    this.#config = fields.config;
    this.vaultId = fields.config.vault_id;
    this.signingKey = fields.signingKey;
    this.encKeys = fields.encKeys;
    this.client = fields.client;
    this.#seen = new Map(Object.entries(fields.config.versions));
  }

  /** The config as last read or written by this session. */
  get config(): OwnerConfig {
    return this.#config;
  }

  /**
   * Changes the agent and grant pins in the config at once (re-read, changed, written
   * atomically): they are security state, so they must not wait for the end of the session.
   */
  async updatePins(change: (config: OwnerConfig) => OwnerConfig): Promise<void> {
    this.#config = await updateConfig(this.home, change);
  }

  /**
   * Re-reads the agent and grant pins from disk. A session is opened before its prompts (the
   * passphrase, a secret's value), and another owner command (an `agent revoke` in another
   * terminal) may have changed the pins since: who gets a wrap is decided from what is on disk
   * right before the upload, never from the copy read when the session began.
   */
  async reloadPins(): Promise<OwnerConfig> {
    const fresh = await readConfig(this.home);
    const current = this.#config;
    if (
      fresh.vault_id !== current.vault_id ||
      fresh.owner_sign_pk !== current.owner_sign_pk ||
      fresh.owner_enc_pk !== current.owner_enc_pk
    ) {
      throw new KeyholeError(
        "config_error",
        `${this.home}/config.json now belongs to another owner; nothing was wrapped`,
      );
    }
    this.#config = { ...current, agents: fresh.agents, grants: fresh.grants };
    return this.#config;
  }

  /** The highest version of a secret seen so far (config pins plus this session). */
  versionSeen(secretId: string): number {
    return this.#seen.get(secretId) ?? 0;
  }

  /** Records a verified version; pinned in the config by `savePins`. */
  noteVersion(secretId: string, version: number): void {
    if (version > this.versionSeen(secretId)) this.#seen.set(secretId, version);
    this.#forgotten.delete(secretId);
  }

  /** Forgets a deleted secret's pin. */
  forgetSecret(secretId: string): void {
    this.#seen.delete(secretId);
    this.#forgotten.add(secretId);
  }

  /** Writes the versions seen in this session to the config, if any moved. */
  async savePins(): Promise<void> {
    const original = this.config.versions;
    const raised = [...this.#seen].some(([id, version]) => version > (original[id] ?? 0));
    if (!raised && this.#forgotten.size === 0) return;
    await updateConfig(this.home, (config) => {
      let next = config;
      for (const [id, version] of this.#seen) next = withVersionSeen(next, id, version);
      for (const id of this.#forgotten) next = withoutSecret(next, id);
      return next;
    });
  }
}

/** True when plain http:// to a non-loopback host was explicitly allowed. */
export function insecureHttpAllowed(io: Io, flag: boolean): boolean {
  return flag || io.env.KEYHOLE_INSECURE_HTTP === "1";
}

/** The server address: `--addr`, else `KEYHOLE_ADDR`, else the config's, else the default. */
export function resolveAddr(io: Io, flagAddr?: string, configAddr?: string): string {
  const envAddr = io.env.KEYHOLE_ADDR;
  if (flagAddr !== undefined) return flagAddr;
  if (envAddr !== undefined && envAddr !== "") return envAddr;
  return configAddr ?? DEFAULT_ADDR;
}

/**
 * The owner's passphrase: `KEYHOLE_PASSPHRASE`, else a muted prompt (asked twice when
 * `confirm`). With neither a variable nor a terminal this is a clear `config_error`.
 */
export async function readPassphrase(io: Io, confirm: boolean): Promise<string> {
  const fromEnv = io.env.KEYHOLE_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const first = await promptHidden(io, "Owner passphrase: ", "passphrase", "KEYHOLE_PASSPHRASE");
  if (!confirm) return first;
  const second = await promptHidden(io, "Repeat passphrase: ", "passphrase", "KEYHOLE_PASSPHRASE");
  if (first !== second) throw new KeyholeError("usage", "the passphrases do not match");
  return first;
}

/** Unlocks the owner in `KEYHOLE_HOME` and connects to its server. */
export async function openSession(io: Io, options: ConnectOptions): Promise<OwnerSession> {
  const home = keyholeHome(io);
  const config = await readConfig(home);
  const url = parseServerAddress(resolveAddr(io, undefined, config.addr), options.insecureHttp);
  const text = await readKeyFileText(home);
  const passphrase = await readPassphrase(io, false);
  const secrets = await decryptKeyFile(text, passphrase, {
    allowTestParams: fastKdfForTests(io.env),
  });
  let signingKey: SigningKey;
  let encKeys: RecipientKeyPair;
  try {
    signingKey = await importSigningKey(secrets.signSeed);
    encKeys = await deriveRecipientKeyPair(secrets.encIkm);
  } finally {
    zeroize(secrets.signSeed, secrets.encIkm);
  }
  if (
    encodeBase64url(signingKey.publicKey) !== config.owner_sign_pk ||
    encodeBase64url(encKeys.publicKey) !== config.owner_enc_pk
  ) {
    throw new KeyholeError("config_error", `owner.key and config.json in ${home} do not match`);
  }
  const client = new OwnerClient(url, { vaultId: config.vault_id, signingKey });
  return new OwnerSession({ io, home, config, signingKey, encKeys, client });
}

/**
 * Runs `work` with an unlocked session and pins every version it verified, even when `work`
 * fails halfway (what was verified stays verified).
 */
export async function withSession<T>(
  io: Io,
  options: ConnectOptions,
  work: (session: OwnerSession) => Promise<T>,
): Promise<T> {
  const session = await openSession(io, options);
  let result: T;
  try {
    result = await work(session);
  } catch (error) {
    await session.savePins().catch(() => undefined);
    throw error;
  }
  await session.savePins();
  return result;
}
