/**
 * The set-up most server test blocks share: a test server, an initialized owner, and a few
 * secrets holding canary values, started in `before` and closed in `after`.
 */
import { after, before } from "node:test";
import { startTestServer, type TestServer, type TestServerOptions } from "./harness.js";
import { canary, TestOwner } from "./owner.js";

/** What `ownedServer` hands the block once its server runs. */
export interface OwnedServer {
  readonly t: TestServer;
  readonly owner: TestOwner;
}

/**
 * Registers the `before`/`after` hooks of the enclosing `describe` (or file). `use` receives the
 * server and its owner once they are up, for the block's own variables:
 * `ownedServer((ready) => ({ t, owner } = ready), { secrets: ["db"] })`.
 */
export function ownedServer(
  use: (ready: OwnedServer) => void,
  options: { readonly server?: TestServerOptions; readonly secrets?: readonly string[] } = {},
): void {
  let t: TestServer | undefined;
  before(async () => {
    t = await startTestServer(options.server);
    const owner = await TestOwner.initialized(t);
    for (const name of options.secrets ?? []) await owner.putSecret(name, canary());
    use({ t, owner });
  });
  after(() => t?.close());
}
