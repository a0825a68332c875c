/**
 * The vault's identity and owner keys, cached: they never change once the owner has
 * initialised the vault, so only an uninitialised vault is re-read from the store (another
 * server on the same database may have initialised it).
 */
import { KeyholeError } from "@keyhole/core";
import type { Store, VaultRecord } from "./store/store.js";

/** The owner's public keys, once set. */
export interface OwnerKeys {
  readonly vaultId: string;
  readonly ownerSignPk: Uint8Array;
  readonly ownerEncPk: Uint8Array;
}

/** The cached vault record. */
export class VaultState {
  readonly #store: Pick<Store, "getVault">;
  #vault: VaultRecord;

  constructor(store: Pick<Store, "getVault">, vault: VaultRecord) {
    this.#store = store;
    this.#vault = vault;
  }

  get vaultId(): string {
    return this.#vault.vaultId;
  }

  /** The vault record, re-read while it has no owner. */
  async current(): Promise<VaultRecord> {
    if (this.#vault.ownerSignPk === null) {
      this.#vault = (await this.#store.getVault()) ?? this.#vault;
    }
    return this.#vault;
  }

  /** The owner's keys, or `not_initialized`. */
  async owner(): Promise<OwnerKeys> {
    const vault = await this.current();
    if (vault.ownerSignPk === null || vault.ownerEncPk === null) {
      throw new KeyholeError("not_initialized");
    }
    return { vaultId: vault.vaultId, ownerSignPk: vault.ownerSignPk, ownerEncPk: vault.ownerEncPk };
  }

  /** Records the vault after init. */
  set(vault: VaultRecord): void {
    this.#vault = vault;
  }
}
