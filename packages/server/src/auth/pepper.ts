/**
 * The pepper: a 32-byte HMAC key kept in `DATA_DIR/pepper`, outside the database, so a stolen
 * database alone cannot test guesses against the verifiers. Each verifier row records the key
 * id (`kid`) of the pepper it was made with, so a pepper can be rotated later without cutting
 * off existing tokens.
 */
import { createHash, createHmac } from "node:crypto";
import { verifierMessage } from "@keyhole/core";

/** One pepper and its id. */
export interface Pepper {
  readonly kid: string;
  readonly key: Uint8Array;
}

/** The key id of a pepper: a short hash that names it without revealing it. */
export function pepperKid(key: Uint8Array): string {
  return createHash("sha256")
    .update("keyhole/v1/pepper-id")
    .update(key)
    .digest("base64url")
    .slice(0, 12);
}

/** The peppers the server knows: the current one signs new verifiers; older ones still verify. */
export class PepperRing {
  readonly current: Pepper;
  readonly #byKid: Map<string, Pepper>;

  constructor(current: Uint8Array, older: readonly Uint8Array[] = []) {
    this.current = { kid: pepperKid(current), key: current };
    this.#byKid = new Map(
      [this.current, ...older.map((key) => ({ kid: pepperKid(key), key }))].map((p) => [p.kid, p]),
    );
  }

  /** The pepper with this id, or undefined. */
  byKid(kid: string): Pepper | undefined {
    return this.#byKid.get(kid);
  }

  /** A new verifier under the current pepper. */
  makeVerifier(
    tokenId: Uint8Array,
    authKey: Uint8Array,
  ): { verifier: Uint8Array; pepperKid: string } {
    return {
      verifier: computeVerifier(this.current.key, tokenId, authKey),
      pepperKid: this.current.kid,
    };
  }
}

/** `HMAC-SHA256(pepper, "keyhole/v1/verifier" ‖ token_id ‖ auth_key)` (FORMATS.md). */
export function computeVerifier(
  pepper: Uint8Array,
  tokenId: Uint8Array,
  authKey: Uint8Array,
): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", pepper).update(verifierMessage(tokenId, authKey)).digest(),
  );
}
