/**
 * `Vault`: the agent's handle on Keyhole (DESIGN.md §6.1). It fetches one secret at the moment
 * it is needed, checks the owner's signature over everything the server sent, refuses to go back
 * to an older version, decrypts locally and zeroes what it can.
 *
 * Secret material lives only in ES private fields (`#…`), which `util.inspect`, `JSON.stringify`
 * and property enumeration cannot reach; the object renders as its address and nothing else.
 */
import {
  type AgentToken,
  fingerprint,
  formatAgentAuthorization,
  isValidName,
  KeyholeError,
  parseToken,
  type RecipientKeyPair,
  zeroize,
} from "@keyhole/core";
import {
  type GrantedSecret,
  parseSecretAnswer,
  parseSecretList,
  type SecretAnswer,
  type SecretInfo,
} from "./answer.js";
import {
  readEnv,
  resolveConfig,
  type TokenSource,
  type VaultConfig,
  type VaultOptions,
} from "./config.js";
import { createFetchTransport, getJson, type Transport } from "./http.js";
import type * as NodeParts from "./node.js";
import { type GrantFloor, isOlderGrant, openSecretAnswer } from "./open-secret.js";

/** What the token gives, derived on first use; the seed itself is destroyed at once. */
interface Session {
  readonly tokenId: Uint8Array;
  readonly authKey: Uint8Array;
  readonly ownerFingerprint: Uint8Array;
  readonly recipient: RecipientKeyPair;
  readonly recipientFingerprint: Uint8Array;
}

interface CachedAnswer {
  readonly answer: SecretAnswer;
  readonly expiresAt: number;
}

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

function onNode(): boolean {
  return typeof globalThis.process?.versions?.node === "string";
}

// Loaded on first need, so the root entry has no static `node:*` import (STYLE.md habit 7).
let nodeParts: Promise<typeof NodeParts> | undefined;
function loadNodeParts(): Promise<typeof NodeParts> {
  nodeParts ??= import("./node.js");
  return nodeParts;
}

/**
 * A client for one Keyhole server and one agent token.
 *
 * ```ts
 * const vault = new Vault();   // KEYHOLE_ADDR, KEYHOLE_TOKEN_FILE (or KEYHOLE_TOKEN)
 * await vault.use("openai-api-key", async (bytes) => { ... });   // bytes zeroed afterwards
 * ```
 *
 * The constructor checks the address and where the token will come from, and throws
 * `config_error` or `insecure_transport` at once. The token is read, parsed and its keys derived
 * on the first call that needs them.
 */
export class Vault {
  readonly #config: VaultConfig;
  /** Dropped once the session exists: a `token` option is not kept longer than needed. */
  #tokenSource: TokenSource | null;
  #session: Promise<Session> | undefined;
  #transport: Promise<Transport> | undefined;
  #vaultId: string | undefined;
  #agentId: string | undefined;
  readonly #floor = new Map<string, GrantFloor>();
  readonly #cache = new Map<string, CachedAnswer>();
  #closed = false;

  constructor(options: VaultOptions = {}) {
    this.#config = resolveConfig(options, readEnv());
    this.#tokenSource = this.#config.token;
  }

  /** The server address in use (origin and base path). Not secret. */
  get addr(): string {
    return this.#config.addr;
  }

  /**
   * Fetches, verifies and decrypts a secret and returns it as a string (UTF-8).
   *
   * A JavaScript string cannot be zeroed and may be copied by the engine: it stays in memory
   * until garbage-collected. Prefer {@link Vault.use}, which hands out bytes and zeroes them.
   *
   * @throws KeyholeError `not_found` (absent or not granted), `unauthenticated`,
   *   `untrusted_server`, `rollback_detected`, `grant_expired`, `network_error`, `usage` (a
   *   value that is not UTF-8 text), …
   */
  async get(name: string): Promise<string> {
    const bytes = (await this.#read(name)).plaintext;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new KeyholeError(
        "usage",
        "the value is not UTF-8 text; read it as bytes with vault.use()",
      );
    } finally {
      zeroize(bytes);
    }
  }

  /**
   * Fetches, verifies and decrypts a secret, passes its bytes to `fn`, and zeroes them when `fn`
   * settles, whether it resolves or throws. Returns what `fn` returns. Do not keep a reference to
   * the bytes: afterwards they are all zero.
   *
   * The second argument says what the owner signed for this grant: the version and the hosts the
   * value may be sent to (a broker refuses any other destination).
   */
  async use<T>(
    name: string,
    fn: (value: Uint8Array, info: SecretInfo) => T | PromiseLike<T>,
  ): Promise<T> {
    if (typeof fn !== "function") {
      throw new KeyholeError("usage", "vault.use(name, fn) needs a callback");
    }
    const { plaintext, answer } = await this.#read(name);
    const info: SecretInfo = Object.freeze({
      name: answer.name,
      version: answer.version,
      notAfter: answer.notAfter,
      allowedHosts: Object.freeze([...answer.allowedHosts]),
    });
    try {
      return await fn(plaintext, info);
    } finally {
      zeroize(plaintext);
    }
  }

  /** The names and current versions of the secrets granted to this agent. */
  async list(): Promise<GrantedSecret[]> {
    const session = await this.#loadSession();
    return parseSecretList(await this.#getJson("/v1/agent/secrets", session));
  }

  /**
   * Drops kept-alive connections, cached answers and the derived auth key. The Vault cannot be
   * used afterwards. Not needed for the process to exit: idle connections do not hold it open.
   */
  close(): void {
    this.#closed = true;
    this.#tokenSource = null;
    this.#cache.clear();
    this.#session?.then((s) => zeroize(s.authKey)).catch(() => {});
    this.#transport?.then((t) => t.close()).catch(() => {});
  }

  toString(): string {
    return `Vault(${this.#config.addr})`;
  }

  toJSON(): { addr: string } {
    return { addr: this.#config.addr };
  }

  [INSPECT](): string {
    return `Vault { addr: '${this.#config.addr}' }`;
  }

  async #read(name: string): Promise<{ plaintext: Uint8Array; answer: SecretAnswer }> {
    if (!isValidName(name)) throw new KeyholeError("usage", "invalid secret name");
    const session = await this.#loadSession();
    const now = Date.now();
    const cached = this.#cachedAnswer(name, now);
    const answer =
      cached ??
      parseSecretAnswer(
        await this.#getJson(`/v1/agent/secrets/${encodeURIComponent(name)}`, session),
      );
    let plaintext: Uint8Array;
    try {
      plaintext = await openSecretAnswer(answer, {
        askedName: name,
        ownerFingerprint: session.ownerFingerprint,
        recipient: session.recipient,
        recipientFingerprint: session.recipientFingerprint,
        pinnedVaultId: this.#vaultId,
        pinnedAgentId: this.#agentId,
        floor: (secretId) => this.#floor.get(secretId),
        now,
      });
    } catch (error) {
      this.#cache.delete(name);
      throw error;
    }
    try {
      this.#remember(answer);
    } catch (error) {
      zeroize(plaintext);
      throw error;
    }
    if (cached === undefined && this.#config.cacheTtl > 0) {
      this.#cache.set(name, { answer, expiresAt: now + this.#config.cacheTtl });
    }
    return { plaintext, answer };
  }

  /** Pins ids and raises the grant floor, once an answer has fully verified. */
  #remember(answer: SecretAnswer): void {
    // Re-checked here: two first calls in flight could each have seen no pin.
    if (
      (this.#vaultId !== undefined && this.#vaultId !== answer.vaultId) ||
      (this.#agentId !== undefined && this.#agentId !== answer.agentId)
    ) {
      throw new KeyholeError("untrusted_server", "the vault id or agent id changed");
    }
    this.#vaultId = answer.vaultId;
    this.#agentId = answer.agentId;
    const floor = this.#floor.get(answer.secretId);
    if (floor === undefined || isOlderGrant(floor, answer))
      this.#floor.set(answer.secretId, { version: answer.version, issuedAt: answer.issuedAt });
  }

  #cachedAnswer(name: string, now: number): SecretAnswer | undefined {
    const entry = this.#cache.get(name);
    if (entry === undefined) return undefined;
    const floor = this.#floor.get(entry.answer.secretId);
    if (now >= entry.expiresAt || (floor !== undefined && isOlderGrant(entry.answer, floor))) {
      this.#cache.delete(name);
      return undefined;
    }
    return entry.answer;
  }

  async #getJson(path: string, session: Session): Promise<unknown> {
    const transport = await this.#loadTransport();
    return getJson(transport, {
      url: this.#config.addr + path,
      headers: {
        authorization: formatAgentAuthorization(session.tokenId, session.authKey),
        "user-agent": this.#config.userAgent,
        accept: "application/json",
      },
      timeoutMs: this.#config.timeoutMs,
    });
  }

  #loadSession(): Promise<Session> {
    if (this.#closed) return Promise.reject(new KeyholeError("usage", "this Vault is closed"));
    if (this.#session === undefined) {
      const pending = this.#createSession();
      this.#session = pending;
      // A failed start (file not there yet, bad token) is retried on the next call.
      pending.then(
        () => {
          this.#tokenSource = null;
        },
        () => {
          if (this.#session === pending) this.#session = undefined;
        },
      );
    }
    return this.#session;
  }

  async #createSession(): Promise<Session> {
    const token = await this.#loadToken();
    try {
      const keys = await token.deriveKeys();
      return {
        tokenId: token.tokenId,
        authKey: keys.authKey,
        ownerFingerprint: token.ownerFingerprint,
        recipient: keys.recipient,
        recipientFingerprint: await fingerprint(keys.recipient.publicKey),
      };
    } finally {
      // The seed is needed only to derive the keys above.
      token.destroy();
    }
  }

  async #loadToken(): Promise<AgentToken> {
    const source = this.#tokenSource;
    if (source === null) throw new KeyholeError("usage", "this Vault is closed");
    if (source.kind === "file") {
      if (!onNode()) {
        throw new KeyholeError(
          "config_error",
          "tokenFile and KEYHOLE_TOKEN_FILE need Node; pass { token } in this runtime",
        );
      }
      return (await loadNodeParts()).readTokenFile(source.path);
    }
    const text = source.kind === "text" ? source.text : readEnv().KEYHOLE_TOKEN;
    const where = source.kind === "text" ? "the token option" : "KEYHOLE_TOKEN";
    if (text === undefined || text === "") {
      throw new KeyholeError("config_error", "KEYHOLE_TOKEN is no longer set");
    }
    try {
      return parseToken(text.trim());
    } catch {
      throw new KeyholeError("invalid_token", `${where} does not hold a valid agent token`);
    }
  }

  #loadTransport(): Promise<Transport> {
    this.#transport ??= onNode()
      ? loadNodeParts().then(
          (node) => node.createNodeTransport(),
          // A bundle for another runtime may lack node.js; fetch works everywhere.
          () => createFetchTransport(),
        )
      : Promise.resolve(createFetchTransport());
    return this.#transport;
  }
}
