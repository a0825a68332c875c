/**
 * @keyhole/sdk: the agent's client for Keyhole. This file is the public contract.
 *
 * Runtime-neutral: this entry and everything it imports statically use no `node:*` module. The
 * Node-only parts (token file, keep-alive `node:http` transport) are in `@keyhole/sdk/node`,
 * which the Vault loads by itself when it runs on Node.
 */

export type { KeyholeErrorCode } from "@keyhole/core";
export { isKeyholeError, KeyholeError } from "@keyhole/core";
export type { GrantedSecret, SecretInfo } from "./answer.js";
export type { VaultOptions } from "./config.js";
export { Vault } from "./vault.js";
