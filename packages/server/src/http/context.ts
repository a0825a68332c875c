/**
 * What a handler knows about its request. The authorization header and raw body stay here for
 * the authentication step; nothing in this object is ever logged.
 */
import { KeyholeError } from "@keyhole/core";
import type { AgentAuthFacts, AuditRequest } from "../store/store.js";
import { parseJsonBody } from "./body.js";

/** Who made the request, once authenticated. */
export type Principal =
  | { readonly kind: "owner" }
  | {
      readonly kind: "agent";
      readonly agent: AgentAuthFacts;
      readonly tokenId: Uint8Array;
    };

/** The fixed facts of a request, known before routing. */
export interface RequestFacts {
  readonly requestId: string;
  readonly method: string;
  /** The raw request target, query included: exactly what an owner signs. */
  readonly target: string;
  readonly path: string;
  /** The raw query string (without `?`), parsed strictly once the body is read. */
  readonly queryText: string;
  readonly clientIp: string;
  /** The rate-limit key of the client address (IPv6 by /64). */
  readonly source: string;
  readonly userAgent: string;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  /** The server clock when the request arrived: expiry and signature windows use it. */
  readonly now: number;
}

/** A request being handled. */
export class RequestContext implements RequestFacts {
  readonly requestId: string;
  readonly method: string;
  readonly target: string;
  readonly path: string;
  readonly queryText: string;
  readonly clientIp: string;
  readonly source: string;
  readonly userAgent: string;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  readonly now: number;
  query: ReadonlyMap<string, string> = new Map();
  params: Readonly<Record<string, string>> = {};
  rawBody: Uint8Array = new Uint8Array(0);
  principal: Principal | null = null;
  /** True once an audit entry for this request has been committed. */
  audited = false;
  readonly #clock: () => number;

  constructor(facts: RequestFacts, clock: () => number) {
    this.requestId = facts.requestId;
    this.method = facts.method;
    this.target = facts.target;
    this.path = facts.path;
    this.queryText = facts.queryText;
    this.clientIp = facts.clientIp;
    this.source = facts.source;
    this.userAgent = facts.userAgent;
    this.contentType = facts.contentType;
    this.authorization = facts.authorization;
    this.now = facts.now;
    this.#clock = clock;
  }

  /** The parsed JSON body, `undefined` when empty. Parsed only after authentication. */
  body(): unknown {
    return parseJsonBody(this.rawBody, this.contentType);
  }

  /** A route parameter (the router guarantees it exists). */
  param(name: string): string {
    const value = this.params[name];
    if (value === undefined) throw new KeyholeError("bad_request", "missing path parameter");
    return value;
  }

  /** The actor id for logs and audit: an agent id, "owner", or "". */
  get actorId(): string {
    if (this.principal?.kind === "agent") return this.principal.agent.id;
    return this.principal?.kind === "owner" ? "owner" : "";
  }

  /** The request's half of an audit entry, stamped with the clock now. */
  auditRequest(): AuditRequest {
    return {
      ts: this.#clock(),
      requestId: this.requestId,
      actorType: this.principal?.kind ?? "anonymous",
      actorId: this.actorId,
      clientIp: this.clientIp,
      userAgent: this.userAgent,
    };
  }

  /** Runs a store operation that writes this request's audit entry, and notes that it did. */
  async audit<T>(operation: (request: AuditRequest) => Promise<T>): Promise<T> {
    const result = await operation(this.auditRequest());
    this.audited = true;
    return result;
  }
}

/** Parses a raw query string strictly: malformed encoding and repeated keys are `bad_request`. */
export function parseQuery(text: string): Map<string, string> {
  const out = new Map<string, string>();
  if (text === "") return out;
  for (const pair of text.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decodeQueryPart(eq < 0 ? pair : pair.slice(0, eq));
    const value = decodeQueryPart(eq < 0 ? "" : pair.slice(eq + 1));
    if (out.has(key)) throw new KeyholeError("bad_request", "repeated query parameter");
    out.set(key, value);
  }
  return out;
}

function decodeQueryPart(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    throw new KeyholeError("bad_request", "malformed percent-encoding in the query");
  }
}
