/**
 * A tiny in-memory stand-in for the Keyhole server's owner routes (docs/api.md), for testing
 * the owner client without the real server: it checks owner signatures and version preconditions
 * like the real one, records every request, and lets a test play a malicious server by editing
 * its state (swap an agent's key, forge a value, roll a version back, rewrite audit entries).
 * Like the real one it lists only active grants (agent live, grant not expired, by `now`) as a
 * secret's grantees, requires a write or rotate to cover exactly those, and drops the rest.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  AUDIT_GENESIS,
  type AuditEntryView,
  auditFieldsFromView,
  chainAuditHash,
  decodeBase64url,
  encodeBase64url,
  encodeCheckpoint,
  encodeInitProofMessage,
  encodeOwnerRequestMessage,
  type GrantUpload,
  generateSigningSeed,
  importSigningKey,
  newId,
  parseOwnerAuthorization,
  type SigningKey,
  sign,
  tryDecodeBase64url,
  verify,
} from "@keyhole/core";

/** One stored version. */
export interface FakeVersion {
  version: number;
  value: string;
  owner_wrap: string;
  /** null: a version older than the field; absent (deleted by a test): left out of the answer. */
  owner_sig?: string | null;
  created_at: number;
}

/** One stored secret. */
export interface FakeSecret {
  id: string;
  name: string;
  versions: FakeVersion[];
  grants: Map<string, GrantUpload>;
}

/** One stored agent. */
export interface FakeAgent {
  id: string;
  name: string;
  enc_pk: string;
  created_at: number;
  key_sig: string;
  expires_at: number | null;
  allowed_cidrs: string[];
  revoked_at: number | null;
  token_id: string;
}

/** A recorded request. */
export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
}

/** The running fake. Tests edit `secrets`, `agents` and `audit` directly to misbehave. */
export interface FakeServer {
  readonly url: string;
  readonly vaultId: string;
  readonly bootstrapCode: string;
  readonly auditKey: SigningKey;
  readonly secrets: Map<string, FakeSecret>;
  readonly agents: Map<string, FakeAgent>;
  audit: AuditEntryView[];
  readonly requests: RecordedRequest[];
  /** The next this-many owner writes (PUT/POST) answer 409 conflict, as if someone raced. */
  conflicts: number;
  /** The server's clock (expiry); `Date.now` unless a test sets it. */
  now: () => number;
  /** At most this many audit entries per page, whatever the client asks (a short-paging server). */
  auditPageLimit: number;
  /** Appends an audit entry with a correct chain hash. */
  appendAudit(action: string): void;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
  ) {
    super(code);
  }
}

function sha256(data: Uint8Array): Uint8Array {
  return createHash("sha256").update(data).digest();
}

/** Starts the fake on 127.0.0.1, port 0. */
export async function startFakeServer(): Promise<FakeServer> {
  const vaultId = newId("vault");
  const bootstrapCode = "fake-bootstrap-code";
  const auditKey = await importSigningKey(generateSigningSeed());
  let ownerSignPk: Uint8Array | null = null;
  const secrets = new Map<string, FakeSecret>();
  const agents = new Map<string, FakeAgent>();
  const requests: RecordedRequest[] = [];
  const fake = {
    audit: [] as AuditEntryView[],
    conflicts: 0,
    now: () => Date.now(),
    auditPageLimit: Number.POSITIVE_INFINITY,
  };

  const agentById = (id: string) => [...agents.values()].find((a) => a.id === id);
  /** The real server's ACTIVE_GRANT: agent neither revoked nor expired, grant not expired. */
  const isActive = (g: GrantUpload) => {
    const a = agentById(g.agent_id);
    const now = fake.now();
    return (
      a !== undefined &&
      a.revoked_at === null &&
      (a.expires_at === null || a.expires_at > now) &&
      (g.not_after === 0 || g.not_after > now)
    );
  };
  const activeGrants = (s: FakeSecret) => [...s.grants.values()].filter(isActive);
  const agentView = (a: FakeAgent) => ({
    id: a.id,
    name: a.name,
    enc_pk: a.enc_pk,
    created_at: a.created_at,
    key_sig: a.key_sig,
    expires_at: a.expires_at,
    allowed_cidrs: a.allowed_cidrs,
    revoked_at: a.revoked_at,
    last_used_at: null,
    grant_count: [...secrets.values()].filter((s) =>
      activeGrants(s).some((g) => g.agent_id === a.id),
    ).length,
  });
  const grantView = (s: FakeSecret, g: GrantUpload) => ({
    agent_id: g.agent_id,
    agent_name: agentById(g.agent_id)?.name ?? "",
    secret_id: s.id,
    secret_name: s.name,
    version: g.version,
    issued_at: g.issued_at,
    not_after: g.not_after,
    allowed_hosts: g.allowed_hosts,
    created_at: g.issued_at,
    // Only `grant add` uploads carry a budget; the fake does not count reads.
    max_uses: (g as { max_uses?: number }).max_uses ?? 0,
    uses: 0,
  });
  const latest = (s: FakeSecret) => s.versions.at(-1) as FakeVersion;
  const secretView = (s: FakeSecret) => {
    const v = latest(s);
    return {
      id: s.id,
      name: s.name,
      version: v.version,
      value: v.value,
      owner_wrap: v.owner_wrap,
      ...(v.owner_sig === undefined ? {} : { owner_sig: v.owner_sig }),
      created_at: s.versions[0]?.created_at ?? 0,
      updated_at: v.created_at,
      rotation_recommended: false,
      grants: activeGrants(s).map((g) => {
        const a = agentById(g.agent_id) as FakeAgent;
        return {
          agent_id: a.id,
          agent_name: a.name,
          enc_pk: a.enc_pk,
          key_sig: a.key_sig,
          agent_created_at: a.created_at,
          not_after: g.not_after,
          allowed_hosts: g.allowed_hosts,
        };
      }),
    };
  };
  const storeGrants = (uploads: GrantUpload[]) => {
    for (const g of uploads) {
      const s = [...secrets.values()].find((x) => x.id === g.secret_id);
      if (s === undefined || latest(s).version !== g.version) throw new HttpError(409, "conflict");
      s.grants.set(g.agent_id, g);
    }
  };

  async function checkOwner(req: IncomingMessage, path: string, body: Buffer): Promise<void> {
    const auth = parseOwnerAuthorization(req.headers.authorization ?? "");
    if (auth === null || ownerSignPk === null) throw new HttpError(401, "unauthenticated");
    const message = encodeOwnerRequestMessage({
      vaultId,
      method: req.method ?? "",
      pathWithQuery: path,
      timestamp: auth.timestamp,
      nonce: auth.nonce,
      bodyHash: sha256(body),
    });
    if (!(await verify(ownerSignPk, message, auth.signature))) {
      throw new HttpError(401, "unauthenticated");
    }
  }

  async function route(method: string, url: URL, body: Record<string, unknown>): Promise<unknown> {
    const path = url.pathname;
    const parts = path.split("/").map(decodeURIComponent);
    if (method === "GET" && path === "/v1/info") {
      return {
        vault_id: vaultId,
        initialized: ownerSignPk !== null,
        owner_sign_pk: ownerSignPk === null ? null : encodeBase64url(ownerSignPk),
        audit_pk: encodeBase64url(auditKey.publicKey),
        server_version: "fake",
      };
    }
    if (method === "POST" && path === "/v1/init") {
      if (ownerSignPk !== null) throw new HttpError(409, "already_initialized");
      if (body.bootstrap_code !== bootstrapCode) throw new HttpError(401, "unauthenticated");
      const signPk = decodeBase64url(body.owner_sign_pk as string, 32);
      const encPk = decodeBase64url(body.owner_enc_pk as string, 32);
      const proof = encodeInitProofMessage(vaultId, bootstrapCode, signPk, encPk);
      if (!(await verify(signPk, proof, decodeBase64url(body.proof as string)))) {
        throw new HttpError(400, "bad_request");
      }
      ownerSignPk = signPk;
      return { vault_id: vaultId, audit_pk: encodeBase64url(auditKey.publicKey) };
    }
    if (parts[1] !== "v1" || parts[2] !== "owner") throw new HttpError(404, "not_found");
    const [, , , kind, name, extra] = parts;
    if (kind === "secrets" && name === undefined && method === "GET") {
      return {
        secrets: [...secrets.values()].map((s) => ({
          id: s.id,
          name: s.name,
          version: latest(s).version,
          created_at: 0,
          updated_at: 0,
          size: 1,
          grant_count: s.grants.size,
          rotation_recommended: false,
        })),
      };
    }
    if (kind === "secrets" && name !== undefined && extra === undefined) {
      const secret = secrets.get(name);
      if (method === "GET") {
        if (secret === undefined) throw new HttpError(404, "not_found");
        return secretView(secret);
      }
      if (method === "DELETE") {
        if (secret === undefined) throw new HttpError(404, "not_found");
        secrets.delete(name);
        return { deleted: true };
      }
      if (method === "PUT") {
        // Like the real server: owner_sig is required (the real one also verifies it).
        const sig = typeof body.owner_sig === "string" ? tryDecodeBase64url(body.owner_sig) : null;
        if (sig === null || sig.length !== 64) {
          throw new HttpError(400, "bad_request");
        }
        const current = secret === undefined ? 0 : latest(secret).version;
        if (body.expected_version !== current || body.version !== current + 1) {
          throw new HttpError(409, "conflict");
        }
        const uploads = body.grants as GrantUpload[];
        const active = secret === undefined ? [] : activeGrants(secret);
        const expected = active
          .map((g) => g.agent_id)
          .sort()
          .join();
        if (
          uploads
            .map((g) => g.agent_id)
            .sort()
            .join() !== expected
        ) {
          throw new HttpError(409, "conflict");
        }
        const stored: FakeSecret = secret ?? {
          id: body.id as string,
          name,
          versions: [],
          grants: new Map(),
        };
        stored.versions.push({
          version: current + 1,
          value: body.value as string,
          owner_wrap: body.owner_wrap as string,
          owner_sig: body.owner_sig as string,
          created_at: Date.now(),
        });
        secrets.set(name, stored);
        // The old version's wraps go; expired grants and revoked agents' are purged with them.
        stored.grants.clear();
        storeGrants(uploads);
        return { id: stored.id, name, version: current + 1 };
      }
    }
    if (kind === "agents" && name === undefined && method === "GET") {
      return { agents: [...agents.values()].map(agentView) };
    }
    if (kind === "grants" && method === "GET") {
      return {
        grants: [...secrets.values()].flatMap((s) =>
          [...s.grants.values()].map((g) => grantView(s, g)),
        ),
      };
    }
    if (kind === "agents" && name === undefined && method === "POST") {
      // As the real server: a revoked agent's name may be reused (the fake keeps only the newest).
      if (agents.get(body.name as string)?.revoked_at === null)
        throw new HttpError(409, "conflict");
      const agent: FakeAgent = {
        id: body.id as string,
        name: body.name as string,
        enc_pk: body.enc_pk as string,
        created_at: body.created_at as number,
        key_sig: body.key_sig as string,
        expires_at: body.expires_at as number | null,
        allowed_cidrs: body.allowed_cidrs as string[],
        revoked_at: null,
        token_id: body.token_id as string,
      };
      agents.set(agent.name, agent);
      storeGrants(body.grants as GrantUpload[]);
      return agentView(agent);
    }
    if (kind === "agents" && name !== undefined) {
      const agent = agents.get(name);
      if (agent === undefined) throw new HttpError(404, "not_found");
      if (method === "GET" && extra === undefined) {
        const grants = [...secrets.values()].flatMap((s) => {
          const g = s.grants.get(agent.id);
          return g === undefined ? [] : [grantView(s, g)];
        });
        return { ...agentView(agent), grants };
      }
      if (method === "POST" && extra === "rotate") {
        if (agent.revoked_at !== null) throw new HttpError(404, "not_found");
        const uploads = body.grants as GrantUpload[];
        const active = [...secrets.values()].flatMap((s) =>
          activeGrants(s).filter((g) => g.agent_id === agent.id),
        );
        const want = active
          .map((g) => g.secret_id)
          .sort()
          .join();
        if (
          uploads
            .map((g) => g.secret_id)
            .sort()
            .join() !== want
        ) {
          throw new HttpError(409, "conflict");
        }
        for (const s of secrets.values()) s.grants.delete(agent.id);
        Object.assign(agent, {
          enc_pk: body.enc_pk,
          created_at: body.created_at,
          key_sig: body.key_sig,
          token_id: body.token_id,
        });
        storeGrants(uploads);
        return agentView(agent);
      }
      if (method === "POST" && extra === "revoke") {
        agent.revoked_at ??= fake.now();
        for (const s of secrets.values()) s.grants.delete(agent.id);
        return { agent: agentView(agent), blast_radius: [] };
      }
    }
    if (kind === "grants" && method === "DELETE" && name !== undefined && extra !== undefined) {
      const agent = agents.get(name);
      const secret = secrets.get(extra);
      if (agent === undefined || secret === undefined || !secret.grants.delete(agent.id)) {
        throw new HttpError(404, "not_found");
      }
      return { deleted: true };
    }
    if (kind === "grants" && method === "POST") {
      storeGrants([body as unknown as GrantUpload]);
      const s = [...secrets.values()].find((x) => x.id === body.secret_id) as FakeSecret;
      return grantView(s, body as unknown as GrantUpload);
    }
    if (kind === "audit" && name === undefined && method === "GET") {
      const after = Number(url.searchParams.get("after") ?? "0");
      const limit = Math.min(Number(url.searchParams.get("limit") ?? "100"), fake.auditPageLimit);
      const rest = fake.audit.filter((e) => e.seq > after);
      const entries = rest.slice(0, limit);
      return { entries, next: rest.length > limit ? (entries.at(-1)?.seq ?? null) : null };
    }
    if (kind === "audit" && name === "checkpoint" && method === "GET") {
      const head =
        fake.audit.length === 0 ? AUDIT_GENESIS : decodeBase64url(fake.audit.at(-1)?.hash ?? "");
      const sig = await sign(auditKey, encodeCheckpoint(vaultId, fake.audit.length, head));
      return {
        log_id: vaultId,
        size: fake.audit.length,
        head: encodeBase64url(head),
        sig: encodeBase64url(sig),
        audit_pk: encodeBase64url(auditKey.publicKey),
      };
    }
    throw new HttpError(404, "not_found");
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const path = req.url ?? "/";
    const url = new URL(path, "http://fake");
    let status = 200;
    let answer: unknown;
    try {
      const body =
        raw.length === 0 ? {} : (JSON.parse(raw.toString("utf8")) as Record<string, unknown>);
      requests.push({ method: req.method ?? "", path, body });
      if (url.pathname.startsWith("/v1/owner/")) await checkOwner(req, path, raw);
      if (fake.conflicts > 0 && (req.method === "PUT" || req.method === "POST")) {
        fake.conflicts--;
        throw new HttpError(409, "conflict");
      }
      answer = await route(req.method ?? "", url, body);
    } catch (error) {
      const e = error instanceof HttpError ? error : new HttpError(500, "internal");
      status = e.status;
      answer = { error: { code: e.code, message: e.code } };
    }
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(answer));
  }

  const server = createServer((req, res) => {
    void handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    vaultId,
    bootstrapCode,
    auditKey,
    secrets,
    agents,
    get audit() {
      return fake.audit;
    },
    set audit(entries: AuditEntryView[]) {
      fake.audit = entries;
    },
    requests,
    get conflicts() {
      return fake.conflicts;
    },
    set conflicts(n: number) {
      fake.conflicts = n;
    },
    get now() {
      return fake.now;
    },
    get auditPageLimit() {
      return fake.auditPageLimit;
    },
    set auditPageLimit(n: number) {
      fake.auditPageLimit = n;
    },
    set now(clock: () => number) {
      fake.now = clock;
    },
    appendAudit(action: string) {
      const previous = fake.audit.at(-1);
      const entry: AuditEntryView = {
        seq: (previous?.seq ?? 0) + 1,
        ts: Date.now(),
        request_id: `req-${fake.audit.length + 1}`,
        actor_type: "owner",
        actor_id: "",
        action,
        result: "ok",
        agent_id: "",
        secret_id: "",
        secret_version: 0,
        client_ip: "127.0.0.1",
        user_agent: "test",
        detail: "",
        hash: "",
      };
      const prev = previous === undefined ? AUDIT_GENESIS : decodeBase64url(previous.hash);
      entry.hash = encodeBase64url(chainAuditHash(prev, auditFieldsFromView(entry), sha256));
      fake.audit.push(entry);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
