/**
 * `$KEYHOLE_HOME/config.json`: what the owner's machine pins about its server. The vault id and
 * public keys are fixed at `init`; the audit pin (last verified checkpoint) and the highest
 * version seen per secret only move forward, so a server that rolls back is caught. The agents
 * and grants this machine made are pinned too (pins.ts), so the server never decides who gets
 * a wrap.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { isId, KeyholeError, tryDecodeBase64url } from "@keyhole/core";
import type { Io } from "../io.js";
import { withConfigLock } from "./config-lock.js";
import { ensurePrivateDir } from "./key-file.js";
import {
  type AgentPins,
  type GrantPins,
  parseAgentPins,
  parseGrantPins,
  withoutSecretGrants,
} from "./pins.js";

const FORMAT = "keyhole-owner-config-v1";

/** The last audit checkpoint `audit verify` accepted. */
export interface AuditPin {
  readonly log_id: string;
  readonly size: number;
  /** base64url of entry_hash[size]. */
  readonly head: string;
}

/** The owner's pinned view of its server. Public data only: no key material. */
export interface OwnerConfig {
  readonly format: typeof FORMAT;
  readonly addr: string;
  readonly vault_id: string;
  readonly owner_sign_pk: string;
  readonly owner_enc_pk: string;
  readonly audit_pk: string;
  readonly audit_pin: AuditPin | null;
  /** Secret id → the highest version this machine has seen (rollback detection). */
  readonly versions: Readonly<Record<string, number>>;
  /** The agents this machine created (pins.ts). */
  readonly agents: AgentPins;
  /** The grants this machine made, with their limits (pins.ts). */
  readonly grants: GrantPins;
}

/** The owner's home: `KEYHOLE_HOME`, else `~/.keyhole`. */
export function keyholeHome(io: Io): string {
  const fromEnv = io.env.KEYHOLE_HOME;
  return fromEnv !== undefined && fromEnv !== ""
    ? resolve(io.cwd, fromEnv)
    : join(homedir(), ".keyhole");
}

function configPath(home: string): string {
  return join(home, "config.json");
}

/** A new config as written by `init`. */
export function newConfig(fields: {
  addr: string;
  vaultId: string;
  ownerSignPk: string;
  ownerEncPk: string;
  auditPk: string;
}): OwnerConfig {
  return {
    format: FORMAT,
    addr: fields.addr,
    vault_id: fields.vaultId,
    owner_sign_pk: fields.ownerSignPk,
    owner_enc_pk: fields.ownerEncPk,
    audit_pk: fields.auditPk,
    audit_pin: null,
    versions: {},
    agents: {},
    grants: {},
  };
}

function isKey(value: unknown): value is string {
  return typeof value === "string" && tryDecodeBase64url(value)?.length === 32;
}

function broken(home: string): never {
  throw new KeyholeError(
    "config_error",
    `${configPath(home)} is damaged; restore it or re-run init`,
  );
}

/** Validates a parsed config strictly. */
function parseConfig(home: string, json: unknown): OwnerConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) broken(home);
  const c = json as Record<string, unknown>;
  if (c.format !== FORMAT || typeof c.addr !== "string" || !isId("vault", c.vault_id)) broken(home);
  if (!isKey(c.owner_sign_pk) || !isKey(c.owner_enc_pk) || !isKey(c.audit_pk)) broken(home);
  let pin: AuditPin | null = null;
  if (c.audit_pin !== null) {
    const p = c.audit_pin as Record<string, unknown> | undefined;
    if (typeof p !== "object" || p === null || typeof p.log_id !== "string") broken(home);
    if (!Number.isSafeInteger(p.size) || (p.size as number) < 0 || !isKey(p.head)) broken(home);
    pin = { log_id: p.log_id, size: p.size as number, head: p.head };
  }
  const versions: Record<string, number> = {};
  if (typeof c.versions !== "object" || c.versions === null || Array.isArray(c.versions)) {
    broken(home);
  }
  for (const [id, version] of Object.entries(c.versions)) {
    if (!Number.isSafeInteger(version) || (version as number) < 1) broken(home);
    versions[id] = version as number;
  }
  const agents = parseAgentPins(c.agents) ?? broken(home);
  const grants = parseGrantPins(c.grants) ?? broken(home);
  return {
    format: FORMAT,
    addr: c.addr,
    vault_id: c.vault_id,
    owner_sign_pk: c.owner_sign_pk,
    owner_enc_pk: c.owner_enc_pk,
    audit_pk: c.audit_pk,
    audit_pin: pin,
    versions,
    agents,
    grants,
  };
}

/** Reads the config, or throws `config_error` pointing at `keyhole init`. */
export async function readConfig(home: string): Promise<OwnerConfig> {
  let text: string;
  try {
    text = await readFile(configPath(home), "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      throw new KeyholeError("config_error", `no owner in ${home}; run \`keyhole init\``);
    }
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    broken(home);
  }
  return parseConfig(home, json);
}

/** True when a config exists. */
export async function configExists(home: string): Promise<boolean> {
  try {
    await readFile(configPath(home));
    return true;
  } catch {
    return false;
  }
}

/** Writes the config atomically (temporary file + rename), mode 0600. */
export async function writeConfig(home: string, config: OwnerConfig): Promise<void> {
  await ensurePrivateDir(home);
  const path = configPath(home);
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await open(temporary, "wx", 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(config, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Re-reads the config just before changing it, so two CLI processes that each raise a version
 * pin do not undo each other's (the window is the few ms between read and rename).
 */
export async function updateConfig(
  home: string,
  change: (config: OwnerConfig) => OwnerConfig,
): Promise<OwnerConfig> {
  // Read and written under one lock: a concurrent owner command must not lose these pins.
  return withConfigLock(home, async () => {
    const next = change(await readConfig(home));
    await writeConfig(home, next);
    return next;
  });
}

/** Raises the highest version seen for a secret (never lowers it). */
export function withVersionSeen(
  config: OwnerConfig,
  secretId: string,
  version: number,
): OwnerConfig {
  const seen = config.versions[secretId] ?? 0;
  if (version <= seen) return config;
  return { ...config, versions: { ...config.versions, [secretId]: version } };
}

/** Forgets a deleted secret's pins: its version and its grants. */
export function withoutSecret(config: OwnerConfig, secretId: string): OwnerConfig {
  const versions = { ...config.versions };
  delete versions[secretId];
  return withoutSecretGrants({ ...config, versions }, secretId);
}
