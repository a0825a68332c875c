/**
 * Capabilities: the placeholder credentials an agent holds instead of the real ones. A capability
 * is 32 random bytes (`khc_` + 43 base64url characters), valid at one broker, for one route, until
 * the broker revokes it or stops. It is worthless anywhere else: the upstream never sees it, and
 * it reveals nothing about the secret or the agent token.
 *
 * The agent presents it where its SDK puts the real key (the route's header, query parameter or
 * basic-auth field) or in `x-keyhole-capability`, so unchanged client code works.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { encodeBase64url, KeyholeError } from "@keyhole/core";
import type { Route } from "./routes.js";

/** Every capability starts with this, so it is recognisable in a dump or a log. */
export const CAPABILITY_PREFIX = "khc_";
/** The header any route accepts a capability in. */
export const CAPABILITY_HEADER = "x-keyhole-capability";

const CAPABILITY = /^khc_[A-Za-z0-9_-]{43}$/;

/** A fresh random capability. */
export function newCapability(): string {
  return CAPABILITY_PREFIX + encodeBase64url(randomBytes(32));
}

/** True when `text` has the shape of a capability (says nothing about its validity). */
export function isCapabilityShaped(text: string): boolean {
  return CAPABILITY.test(text);
}

/** The valid capabilities of one broker, one per route. */
export class CapabilityBook {
  readonly #byRoute = new Map<string, Buffer>();

  /** Accepts `capability` for `routeName` from now on (replacing any earlier one). */
  set(routeName: string, capability: string): void {
    if (!isCapabilityShaped(capability))
      throw new KeyholeError("config_error", `invalid capability for route ${routeName}`);
    this.#byRoute.set(routeName, Buffer.from(capability, "ascii"));
  }

  /** Issues and records a new capability for `routeName`. */
  issue(routeName: string): string {
    const capability = newCapability();
    this.set(routeName, capability);
    return capability;
  }

  /** True when one of `presented` is the route's capability (constant time per comparison). */
  accepts(routeName: string, presented: readonly string[]): boolean {
    const expected = this.#byRoute.get(routeName);
    if (expected === undefined) return false;
    let ok = false;
    for (const candidate of presented) {
      const bytes = Buffer.from(candidate, "ascii");
      // The length is public (fixed by the format); only equal lengths reach the comparison.
      if (bytes.length === expected.length && timingSafeEqual(bytes, expected)) ok = true;
    }
    return ok;
  }

  /** Forgets every capability: from now on every request is refused. */
  revokeAll(): void {
    for (const value of this.#byRoute.values()) value.fill(0);
    this.#byRoute.clear();
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** `<cap>` or `<scheme> <cap>` (e.g. `Bearer khc_…`, `token khc_…`). */
function fromCredentialHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const parts = value.trim().split(" ");
  if (parts.length === 1) return parts[0];
  if (parts.length === 2 && /^[A-Za-z]+$/.test(parts[0] ?? "")) return parts[1];
  return undefined;
}

function fromBasic(value: string | undefined): string[] {
  const match = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(value?.trim() ?? "");
  if (match === null) return [];
  const decoded = Buffer.from(match[1] ?? "", "base64").toString("latin1");
  const colon = decoded.indexOf(":");
  return colon === -1 ? [decoded] : [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

/**
 * What a request presents as a capability for `route`: the dedicated header, and the route's own
 * credential slot. Only shaped candidates are returned; nothing here is trusted yet.
 */
export function presentedCapabilities(
  route: Route,
  headers: IncomingHttpHeaders,
  query: string,
): string[] {
  const candidates: (string | undefined)[] = [single(headers[CAPABILITY_HEADER])];
  const inject = route.inject;
  if (inject.kind === "header") candidates.push(fromCredentialHeader(single(headers[inject.name])));
  else if (inject.kind === "basic") candidates.push(...fromBasic(single(headers.authorization)));
  else {
    const values = new URLSearchParams(query).getAll(inject.param);
    if (values.length === 1) candidates.push(values[0]);
  }
  return candidates.filter((c): c is string => c !== undefined && isCapabilityShaped(c));
}
