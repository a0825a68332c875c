/**
 * A small router: exact segment matching with `:param` segments, percent-decoded (malformed
 * encoding is `bad_request`). No wildcards, no trailing-slash folding: a path either is a route
 * or gets `404`, and so does a known path with the wrong method.
 */
import { KeyholeError } from "@keyhole/core";
import type { RequestContext } from "./context.js";

/** Who may call a route. */
export type Role = "public" | "agent" | "owner";

/** A handler's answer. */
export interface Reply {
  readonly status: number;
  readonly body: unknown;
}

/** One route. */
export interface Route {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  readonly pattern: string;
  readonly role: Role;
  /**
   * The audit action of attempts on this route. Routes without one (public routes, owner
   * reads of metadata and of the audit log itself) write no entry for an authenticated call.
   */
  readonly action?: string;
  /** Query parameters the route accepts; any other is `bad_request`. */
  readonly query?: readonly string[];
  /** The largest body it takes, when not http/body.ts's `MAX_BODY_BYTES`. */
  readonly maxBodyBytes?: number;
  readonly handler: (ctx: RequestContext) => Promise<Reply>;
}

/** A matched route and its decoded parameters. */
export interface RouteMatch {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

/** Matches request paths to routes. */
export class Router {
  readonly #routes: { route: Route; segments: string[] }[];

  constructor(routes: readonly Route[]) {
    this.#routes = routes.map((route) => ({ route, segments: route.pattern.split("/") }));
  }

  /** The route for `method` and `path` (without query), or null. */
  match(method: string, path: string): RouteMatch | null {
    const segments = path.split("/");
    for (const { route, segments: pattern } of this.#routes) {
      if (route.method !== method || pattern.length !== segments.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < pattern.length && ok; i++) {
        const want = pattern[i] as string;
        const got = segments[i] as string;
        if (want.startsWith(":")) {
          if (got === "") ok = false;
          else params[want.slice(1)] = decodeSegment(got);
        } else if (want !== got) {
          ok = false;
        }
      }
      if (ok) return { route, params };
    }
    return null;
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new KeyholeError("bad_request", "malformed percent-encoding in the path");
  }
}
