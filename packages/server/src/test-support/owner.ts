/**
 * Test support: an owner client doing what the CLI does — sign requests, mint agent tokens,
 * seal values, wrap DEKs and sign grants with core's functions — and an agent client that
 * fetches and opens secrets. Test code only: it uses core's decrypt path, which the server's own
 * code may not (no-decrypt-path.test.ts skips this directory).
 */
import { createHash, randomBytes } from "node:crypto";
import {
  type AgentSecretResponse,
  AgentToken,
  type AuditEntryView,
  agentRecipientId,
  decodeBase64url,
  deriveRecipientKeyPair,
  encodeBase64url,
  encodeInitProofMessage,
  encodeOwnerRequestMessage,
  fingerprint,
  formatAgentAuthorization,
  formatOwnerAuthorization,
  type GrantUpload,
  importSigningKey,
  newId,
  openValue,
  ownerRecipientId,
  parseValueEnvelope,
  type RecipientKeyPair,
  type SecretView,
  type SigningKey,
  sealValue,
  sign,
  signAgentKey,
  signGrant,
  unwrapDek,
  wrapDek,
} from "@keyhole/core";
import { bodyBytes, call, type HttpResult } from "./http.js";

/** An agent as its owner minted it, with the keys its token derives. */
export interface TestAgent {
  readonly id: string;
  readonly name: string;
  readonly token: string;
  readonly tokenId: Uint8Array;
  readonly authKey: Uint8Array;
  readonly recipient: RecipientKeyPair;
  readonly encPk: Uint8Array;
  readonly createdAt: number;
  readonly keySig: Uint8Array;
  /** `Authorization` header value. */
  readonly header: string;
}

/** A secret's current version as the owner opens it. */
export interface OwnedSecret {
  readonly id: string;
  readonly name: string;
  readonly version: number;
  readonly value: Uint8Array;
  readonly dek: Uint8Array;
  readonly dekId: Uint8Array;
  readonly view: SecretView;
}

/** Grant limits. */
export interface GrantOptions {
  readonly notAfter?: number;
  readonly allowedHosts?: string[];
  /** Only for `grant()`: the read budget (default 0, no limit). */
  readonly maxUses?: number;
}

/** Options of a new agent. */
export interface AgentOptions extends GrantOptions {
  readonly expiresAt?: number | null;
  /** Canonical CIDR ranges (default none: anywhere). */
  readonly allowedCidrs?: string[];
}

/** Options of a signed request. */
export interface SignOptions {
  readonly timestamp?: number;
  readonly nonce?: Uint8Array;
  readonly headers?: Record<string, string>;
  /** Sign this target instead of the one sent (to test a mismatch). */
  readonly signedPath?: string;
  /** Sign these body bytes instead of the ones sent. */
  readonly signedBody?: unknown;
}

const DEFAULT_HOSTS = ["api.example.com"];

/** The owner of a test vault. */
export class TestOwner {
  readonly signKey: SigningKey;
  readonly enc: RecipientKeyPair;
  /** The server's URL (tests point it at a restarted server). */
  url: string;
  readonly now: () => number;
  vaultId = "";

  private constructor(signKey: SigningKey, enc: RecipientKeyPair, url: string, now: () => number) {
    this.signKey = signKey;
    this.enc = enc;
    this.url = url;
    this.now = now;
  }

  /** New owner keys for the server at `url`, signing with the server's clock. */
  static async create(url: string, now: () => number): Promise<TestOwner> {
    const signKey = await importSigningKey(new Uint8Array(randomBytes(32)));
    const enc = await deriveRecipientKeyPair(new Uint8Array(randomBytes(32)));
    return new TestOwner(signKey, enc, url, now);
  }

  /**
   * The same owner (keys, vault id, clock) talking to the server at `url`: several servers on
   * one database, each used at the same time.
   */
  at(url: string): TestOwner {
    const other = new TestOwner(this.signKey, this.enc, url, this.now);
    other.vaultId = this.vaultId;
    return other;
  }

  /** Creates keys and initialises the server; fails the test if init does not succeed. */
  static async initialized(server: {
    url: string;
    server: { bootstrapCode: string | null };
    clock: { now: () => number };
  }): Promise<TestOwner> {
    const owner = await TestOwner.create(server.url, server.clock.now);
    const res = await owner.init(server.server.bootstrapCode ?? "");
    if (res.status !== 200) throw new Error(`init failed: ${res.status} ${res.text}`);
    return owner;
  }

  /** `POST /v1/init` with a valid proof for `code`. */
  async init(code: string, overrides: Record<string, unknown> = {}): Promise<HttpResult> {
    const info = await call(this.url, { method: "GET", path: "/v1/info" });
    this.vaultId = (info.json as { vault_id: string }).vault_id;
    const proof = await sign(
      this.signKey,
      encodeInitProofMessage(this.vaultId, code, this.signKey.publicKey, this.enc.publicKey),
    );
    return call(this.url, {
      method: "POST",
      path: "/v1/init",
      body: {
        bootstrap_code: code,
        owner_sign_pk: encodeBase64url(this.signKey.publicKey),
        owner_enc_pk: encodeBase64url(this.enc.publicKey),
        proof: encodeBase64url(proof),
        ...overrides,
      },
    });
  }

  /** The `Keyhole-Owner` header for a request. */
  async authorization(
    method: string,
    target: string,
    body: unknown,
    options: SignOptions = {},
  ): Promise<string> {
    const timestamp = options.timestamp ?? this.now();
    const nonce = options.nonce ?? new Uint8Array(randomBytes(16));
    const message = encodeOwnerRequestMessage({
      vaultId: this.vaultId,
      method,
      pathWithQuery: target,
      timestamp,
      nonce,
      bodyHash: new Uint8Array(createHash("sha256").update(bodyBytes(body)).digest()),
    });
    return formatOwnerAuthorization(timestamp, nonce, await sign(this.signKey, message));
  }

  /** Every audit entry, in order, paging through `GET /v1/owner/audit` (each page must be a 200). */
  async auditEntries(): Promise<AuditEntryView[]> {
    const out: AuditEntryView[] = [];
    let after = 0;
    for (;;) {
      const res = await this.request("GET", `/v1/owner/audit?after=${after}&limit=1000`);
      if (res.status !== 200) throw new Error(`reading the audit log answered ${res.status}`);
      const page = res.json as { entries: AuditEntryView[]; next: number | null };
      out.push(...page.entries);
      if (page.next === null) return out;
      after = page.next;
    }
  }

  /** A signed owner request. */
  async request(
    method: string,
    path: string,
    body?: unknown,
    options: SignOptions = {},
  ): Promise<HttpResult> {
    const authorization = await this.authorization(
      method,
      options.signedPath ?? path,
      options.signedBody ?? body,
      options,
    );
    return call(this.url, {
      method,
      path,
      body,
      headers: { authorization, ...options.headers },
    });
  }

  /** Mints an agent identity (token, keys, signed key statement), not yet registered. */
  async mintAgent(name: string, id = newId("agent")): Promise<TestAgent> {
    const token = AgentToken.generate(await fingerprint(this.signKey.publicKey));
    const keys = await token.deriveKeys();
    const createdAt = this.now();
    const keySig = await signAgentKey(this.signKey, {
      vaultId: this.vaultId,
      agentId: id,
      agentPublicKey: keys.recipient.publicKey,
      createdAt,
    });
    return {
      id,
      name,
      token: token.encode(),
      tokenId: token.tokenId,
      authKey: keys.authKey,
      recipient: keys.recipient,
      encPk: keys.recipient.publicKey,
      createdAt,
      keySig,
      header: formatAgentAuthorization(token.tokenId, keys.authKey),
    };
  }

  /** Reads and opens a secret's current version; throws if it cannot. */
  async openSecret(name: string): Promise<OwnedSecret> {
    const res = await this.request("GET", `/v1/owner/secrets/${name}`);
    if (res.status !== 200) throw new Error(`read ${name}: ${res.status} ${res.text}`);
    const view = res.json as SecretView;
    const value = decodeBase64url(view.value);
    const { dekId } = parseValueEnvelope(value);
    const dek = await unwrapDek(
      { vaultId: this.vaultId, secretId: view.id, version: view.version },
      dekId,
      ownerRecipientId(this.vaultId),
      this.enc,
      decodeBase64url(view.owner_wrap),
    );
    return { id: view.id, name, version: view.version, value, dek, dekId, view };
  }

  /** A signed grant upload of `secret` for `agent`. */
  async grantUpload(
    secret: Pick<OwnedSecret, "id" | "name" | "version" | "value" | "dek" | "dekId">,
    agent: { id: string; encPk: Uint8Array },
    options: GrantOptions = {},
  ): Promise<GrantUpload> {
    const ref = { vaultId: this.vaultId, secretId: secret.id, version: secret.version };
    const wrap = await wrapDek(ref, secret.dekId, secret.dek, {
      recipientId: agentRecipientId(agent.id),
      publicKey: agent.encPk,
    });
    const issuedAt = this.now();
    const notAfter = options.notAfter ?? 0;
    const allowedHosts = options.allowedHosts ?? DEFAULT_HOSTS;
    const sig = await signGrant(this.signKey, {
      vaultId: this.vaultId,
      secretId: secret.id,
      secretName: secret.name,
      version: secret.version,
      dekId: secret.dekId,
      agentId: agent.id,
      recipientFingerprint: await fingerprint(agent.encPk),
      valueEnvelope: secret.value,
      wrap,
      issuedAt,
      notAfter,
      allowedHosts,
    });
    return {
      agent_id: agent.id,
      secret_id: secret.id,
      version: secret.version,
      wrap: encodeBase64url(wrap),
      issued_at: issuedAt,
      not_after: notAfter,
      allowed_hosts: allowedHosts,
      sig: encodeBase64url(sig),
    };
  }

  /** The `AgentCreate` body for a minted agent with grants on `secrets`. */
  async agentCreateBody(
    agent: TestAgent,
    secrets: readonly string[] = [],
    options: AgentOptions = {},
  ): Promise<Record<string, unknown>> {
    const grants: GrantUpload[] = [];
    for (const name of secrets)
      grants.push(await this.grantUpload(await this.openSecret(name), agent, options));
    return {
      id: agent.id,
      name: agent.name,
      enc_pk: encodeBase64url(agent.encPk),
      created_at: agent.createdAt,
      key_sig: encodeBase64url(agent.keySig),
      token_id: encodeBase64url(agent.tokenId),
      auth_key: encodeBase64url(agent.authKey),
      expires_at: options.expiresAt ?? null,
      allowed_cidrs: options.allowedCidrs ?? [],
      grants,
    };
  }

  /** Mints and registers an agent; throws unless the server answers 201. */
  async createAgent(
    name: string,
    secrets: readonly string[] = [],
    options: AgentOptions = {},
  ): Promise<TestAgent> {
    const agent = await this.mintAgent(name);
    const res = await this.request(
      "POST",
      "/v1/owner/agents",
      await this.agentCreateBody(agent, secrets, options),
    );
    if (res.status !== 201) throw new Error(`create agent ${name}: ${res.status} ${res.text}`);
    return agent;
  }

  /** The `SecretPut` body of a new version of `name` holding `value`, re-wrapped for its grantees. */
  async secretPutBody(name: string, value: Uint8Array): Promise<Record<string, unknown>> {
    const current = await this.request("GET", `/v1/owner/secrets/${name}`);
    const view = current.status === 200 ? (current.json as SecretView) : null;
    const id = view?.id ?? newId("secret");
    const version = (view?.version ?? 0) + 1;
    const ref = { vaultId: this.vaultId, secretId: id, version };
    const sealed = await sealValue(ref, value);
    const ownerWrap = await wrapDek(ref, sealed.dekId, sealed.dek, {
      recipientId: ownerRecipientId(this.vaultId),
      publicKey: this.enc.publicKey,
    });
    const secret = {
      id,
      name,
      version,
      value: sealed.envelope,
      dek: sealed.dek,
      dekId: sealed.dekId,
    };
    const ownerSig = await this.ownerSig(secret, ownerWrap);
    const grants: GrantUpload[] = [];
    for (const g of view?.grants ?? []) {
      grants.push(
        await this.grantUpload(
          secret,
          { id: g.agent_id, encPk: decodeBase64url(g.enc_pk) },
          { notAfter: g.not_after, allowedHosts: g.allowed_hosts },
        ),
      );
    }
    return {
      id,
      expected_version: view?.version ?? 0,
      version,
      value: encodeBase64url(sealed.envelope),
      owner_wrap: encodeBase64url(ownerWrap),
      owner_sig: encodeBase64url(ownerSig),
      grants,
    };
  }

  /**
   * `body` (a `SecretPut`) with `owner_sig` signed afresh for `name` and the body's own id,
   * version, value and wrap: a doctored body that still passes the signature check, so a test
   * reaches the checks behind it.
   */
  async resignPut(body: Record<string, unknown>, name: string): Promise<Record<string, unknown>> {
    const value = decodeBase64url(String(body.value));
    const sig = await this.ownerSig(
      {
        id: String(body.id),
        name,
        version: Number(body.version),
        value,
        dekId: parseValueEnvelope(value).dekId,
      },
      decodeBase64url(String(body.owner_wrap)),
    );
    return { ...body, owner_sig: encodeBase64url(sig) };
  }

  /** The owner's `KHG1` signature over its own wrap of a version (`SecretPut.owner_sig`). */
  async ownerSig(
    secret: Pick<OwnedSecret, "id" | "name" | "version" | "value" | "dekId">,
    ownerWrap: Uint8Array,
  ): Promise<Uint8Array> {
    return signGrant(this.signKey, {
      vaultId: this.vaultId,
      secretId: secret.id,
      secretName: secret.name,
      version: secret.version,
      dekId: secret.dekId,
      agentId: ownerRecipientId(this.vaultId),
      recipientFingerprint: await fingerprint(this.enc.publicKey),
      valueEnvelope: secret.value,
      wrap: ownerWrap,
      issuedAt: 0,
      notAfter: 0,
      allowedHosts: [],
    });
  }

  /** Writes a new version; throws unless the server accepts it. */
  async putSecret(name: string, value: Uint8Array): Promise<{ id: string; version: number }> {
    const res = await this.request(
      "PUT",
      `/v1/owner/secrets/${name}`,
      await this.secretPutBody(name, value),
    );
    if (res.status !== 200 && res.status !== 201)
      throw new Error(`put ${name}: ${res.status} ${res.text}`);
    return res.json as { id: string; version: number };
  }

  /** Grants `secret` to a registered agent. */
  async grant(agent: TestAgent, secret: string, options: GrantOptions = {}): Promise<HttpResult> {
    const upload = await this.grantUpload(await this.openSecret(secret), agent, options);
    return this.request("POST", "/v1/owner/grants", { ...upload, max_uses: options.maxUses ?? 0 });
  }

  /** Rotates an agent: new token and key, its grants re-wrapped. Returns the new identity. */
  async rotateAgent(
    agent: TestAgent,
    secrets: readonly string[],
  ): Promise<{ agent: TestAgent; res: HttpResult }> {
    const next = await this.mintAgent(agent.name, agent.id);
    const body = await this.agentCreateBody(next, secrets);
    const { id: _id, name: _name, expires_at: _expires, allowed_cidrs: _cidrs, ...rotate } = body;
    const res = await this.request("POST", `/v1/owner/agents/${agent.name}/rotate`, rotate);
    return { agent: next, res };
  }
}

/** An agent's GET. */
export function agentGet(
  url: string,
  agent: Pick<TestAgent, "header">,
  path: string,
): Promise<HttpResult> {
  return call(url, { method: "GET", path, headers: { authorization: agent.header } });
}

/** Fetches a secret as an agent and opens it; `value` is null unless the fetch succeeded. */
export async function fetchAndOpen(
  url: string,
  agent: TestAgent,
  name: string,
): Promise<{ res: HttpResult; value: Uint8Array | null }> {
  const res = await agentGet(url, agent, `/v1/agent/secrets/${name}`);
  if (res.status !== 200) return { res, value: null };
  const body = res.json as AgentSecretResponse;
  const envelope = decodeBase64url(body.value);
  const ref = { vaultId: body.vault_id, secretId: body.secret_id, version: body.version };
  const { dekId } = parseValueEnvelope(envelope);
  const dek = await unwrapDek(
    ref,
    dekId,
    agentRecipientId(agent.id),
    agent.recipient,
    decodeBase64url(body.wrap),
  );
  return { res, value: await openValue(ref, dek, envelope) };
}

/** Random bytes for test values. */
export function canary(length = 32): Uint8Array {
  return new Uint8Array(randomBytes(length));
}
