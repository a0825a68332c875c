/**
 * Public routes: liveness (`/healthz`: the process answers), readiness (`/readyz`: the store
 * answers a query, the vault record is loaded and no write has failed for lack of storage
 * lately, see store/storage-errors.ts), vault info, and the one-time `POST /v1/init` that binds
 * the owner's keys to the vault, proven by the bootstrap code and a signature with the new owner
 * key.
 */
import {
  encodeBase64url,
  encodeInitProofMessage,
  type InfoResponse,
  type InitResponse,
  isKeyholeError,
  KeyholeError,
  verify,
} from "@keyhole/core";
import type { AuditKey } from "../audit/audit-key.js";
import type { BootstrapCode } from "../auth/bootstrap.js";
import type { AuthGate } from "../auth/gate.js";
import type { Route } from "../http/router.js";
import type { Logger } from "../log.js";
import { type StorageHealth, storageCause } from "../store/storage-errors.js";
import type { Store } from "../store/store.js";
import { checkBody } from "../validate.js";
import type { VaultState } from "../vault-state.js";
import { SERVER_VERSION } from "../version.js";
import { initCheck } from "./wire-checks.js";

/** What the public routes use. */
export interface PublicDeps {
  readonly store: Pick<Store, "initVault" | "getVault">;
  readonly vault: VaultState;
  readonly logger: Pick<Logger, "unexpected">;
  readonly auditKey: AuditKey;
  readonly bootstrap: BootstrapCode;
  readonly gate: Pick<AuthGate, "fail" | "refuseBlockedSource">;
  readonly storage: Pick<StorageHealth, "failing">;
}

/** `GET /healthz`, `GET /readyz`, `GET /v1/info`, `POST /v1/init`. */
export function publicRoutes(deps: PublicDeps): Route[] {
  return [
    {
      method: "GET",
      pattern: "/healthz",
      role: "public",
      handler: async () => ({ status: 200, body: { ok: true } }),
    },
    {
      method: "GET",
      pattern: "/readyz",
      role: "public",
      handler: async (ctx) => {
        let vault: Awaited<ReturnType<Store["getVault"]>>;
        try {
          vault = await deps.store.getVault();
        } catch (error) {
          // A storage fault (after a failed fsync the store refuses everything until a restart)
          // or a PostgreSQL that cannot be reached (down, restarting) is answered, logged with
          // its code and counted as one, like any other request's.
          const pgCause = storageCause(error)?.startsWith("PG_") === true;
          if (isKeyholeError(error) && (error.code === "storage_unavailable" || pgCause)) {
            throw error;
          }
          // Closed, locked or broken: logged by name only, answered with a fixed 503.
          deps.logger.unexpected("readiness: store not answering", error, ctx.requestId);
          throw new KeyholeError("unavailable", "the store is not answering");
        }
        if (vault?.vaultId !== deps.vault.vaultId) {
          throw new KeyholeError("unavailable", "the vault record is not loaded");
        }
        // Reads still work on a full disk, but nearly every answer needs an audit entry written.
        if (deps.storage.failing()) throw new KeyholeError("storage_unavailable");
        return { status: 200, body: { status: "ready" } };
      },
    },
    {
      method: "GET",
      pattern: "/v1/info",
      role: "public",
      handler: async () => {
        const vault = await deps.vault.current();
        const body: InfoResponse = {
          vault_id: vault.vaultId,
          initialized: vault.ownerSignPk !== null,
          owner_sign_pk: vault.ownerSignPk === null ? null : encodeBase64url(vault.ownerSignPk),
          audit_pk: encodeBase64url(deps.auditKey.publicKey),
          server_version: SERVER_VERSION,
        };
        return { status: 200, body };
      },
    },
    {
      method: "POST",
      pattern: "/v1/init",
      role: "public",
      action: "vault.init",
      handler: async (ctx) => {
        const vault = await deps.vault.current();
        if (vault.ownerSignPk !== null) throw new KeyholeError("already_initialized");
        // The bootstrap code is the one low-entropy-looking secret: a blocked source gets no try.
        await deps.gate.refuseBlockedSource(ctx);
        const body = checkBody(ctx.body(), initCheck);
        if (!deps.bootstrap.matches(body.bootstrap_code)) {
          return deps.gate.fail(ctx, "bad_bootstrap_code");
        }
        const proof = encodeInitProofMessage(
          vault.vaultId,
          body.bootstrap_code,
          body.owner_sign_pk,
          body.owner_enc_pk,
        );
        if (!(await verify(body.owner_sign_pk, proof, body.proof))) {
          throw new KeyholeError("bad_request", "proof does not verify");
        }
        ctx.principal = { kind: "owner" };
        const initialized = await ctx.audit((request) =>
          deps.store.initVault(body.owner_sign_pk, body.owner_enc_pk, request),
        );
        if (initialized === null) throw new KeyholeError("already_initialized");
        deps.vault.set(initialized);
        deps.bootstrap.consume();
        const reply: InitResponse = {
          vault_id: initialized.vaultId,
          audit_pk: encodeBase64url(deps.auditKey.publicKey),
        };
        return { status: 200, body: reply };
      },
    },
  ];
}
