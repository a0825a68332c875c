/**
 * The agent token (FORMATS.md "Agent token"):
 *
 *   kh1_ base64url( token_id[16] ‖ seed[32] ‖ owner_fpr[16] ‖ crc32[4] )      95 characters
 *
 * From the seed, HKDF derives the auth key (the only thing ever sent to the server) and the
 * agent's X25519 key pair (which never leaves the agent). The token object keeps its seed in a
 * private field and renders as `[AgentToken redacted]` in logs, JSON and `util.inspect`.
 */
import { decodeBase64url, encodeBase64url, tryDecodeBase64url } from "./base64url.js";
import { concatBytes, randomBytes, utf8, zeroize } from "./bytes.js";
import { crc32 } from "./crc32.js";
import { KeyholeError } from "./errors.js";
import { deriveRecipientKeyPair, type RecipientKeyPair } from "./hpke.js";
import { hkdfSha256, label } from "./keys.js";

/** The token's textual prefix: greppable and matched by secret scanners. */
export const TOKEN_PREFIX = "kh1_";
/** The exact length of a token string. */
export const TOKEN_LENGTH = 95;
/** What a secret scanner should look for. */
export const TOKEN_PATTERN = /kh1_[A-Za-z0-9_-]{91}/;

const TOKEN_ID_LENGTH = 16;
const SEED_LENGTH = 32;
const FPR_LENGTH = 16;
const BODY_LENGTH = TOKEN_ID_LENGTH + SEED_LENGTH + FPR_LENGTH;
const HKDF_SALT = utf8("keyhole/v1");

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/** The keys an agent derives from its token's seed. */
export interface AgentKeys {
  /** Sent to the server in the Authorization header; the server keeps only an HMAC of it. */
  readonly authKey: Uint8Array;
  /** The agent's X25519 key pair: DEK wraps are sealed to its public key. */
  readonly recipient: RecipientKeyPair;
}

/** A parsed agent token. The seed is private and never rendered. */
export class AgentToken {
  readonly tokenId: Uint8Array;
  readonly ownerFingerprint: Uint8Array;
  #seed: Uint8Array;

  constructor(tokenId: Uint8Array, seed: Uint8Array, ownerFingerprint: Uint8Array) {
    if (
      tokenId.length !== TOKEN_ID_LENGTH ||
      seed.length !== SEED_LENGTH ||
      ownerFingerprint.length !== FPR_LENGTH
    ) {
      throw new KeyholeError("invalid_token");
    }
    this.tokenId = Uint8Array.from(tokenId);
    this.#seed = Uint8Array.from(seed);
    this.ownerFingerprint = Uint8Array.from(ownerFingerprint);
  }

  /** A new token with a random id and seed, pinned to the owner's signing key fingerprint. */
  static generate(ownerFingerprint: Uint8Array): AgentToken {
    const seed = randomBytes(SEED_LENGTH);
    try {
      return new AgentToken(randomBytes(TOKEN_ID_LENGTH), seed, ownerFingerprint);
    } finally {
      zeroize(seed);
    }
  }

  /** The `kh1_…` text. Handle the result as a secret. */
  encode(): string {
    const body = concatBytes(this.tokenId, this.#seed, this.ownerFingerprint);
    const crc = new Uint8Array(4);
    new DataView(crc.buffer).setUint32(0, crc32(body), false);
    const bytes = concatBytes(body, crc);
    try {
      return TOKEN_PREFIX + encodeBase64url(bytes);
    } finally {
      zeroize(body, bytes);
    }
  }

  /**
   * Derives the auth key and the X25519 key pair (FORMATS.md):
   * auth_key = HKDF(seed, "keyhole/v1", "keyhole/v1/token-auth" ‖ token_id, 32);
   * x_ikm = HKDF(seed, "keyhole/v1", "keyhole/v1/token-x25519" ‖ token_id, 32); DeriveKeyPair(x_ikm).
   */
  async deriveKeys(): Promise<AgentKeys> {
    const authKey = await hkdfSha256(
      this.#seed,
      HKDF_SALT,
      concatBytes(label("token-auth"), this.tokenId),
      32,
    );
    const xIkm = await hkdfSha256(
      this.#seed,
      HKDF_SALT,
      concatBytes(label("token-x25519"), this.tokenId),
      32,
    );
    try {
      return { authKey, recipient: await deriveRecipientKeyPair(xIkm) };
    } finally {
      zeroize(xIkm);
    }
  }

  /** Overwrites the seed; the token is unusable afterwards. */
  destroy(): void {
    zeroize(this.#seed);
  }

  toString(): string {
    return "[AgentToken redacted]";
  }

  toJSON(): string {
    return "[AgentToken redacted]";
  }

  [INSPECT](): string {
    return "[AgentToken redacted]";
  }
}

/**
 * Parses a `kh1_` token strictly: prefix, exact length, alphabet, canonical base64url, checksum.
 * Any failure is the one generic `invalid_token` error, which never echoes the input.
 */
export function parseToken(text: string): AgentToken {
  if (typeof text !== "string" || text.length !== TOKEN_LENGTH || !text.startsWith(TOKEN_PREFIX)) {
    throw new KeyholeError("invalid_token");
  }
  const bytes = tryDecodeBase64url(text.slice(TOKEN_PREFIX.length));
  if (bytes === null || bytes.length !== BODY_LENGTH + 4) throw new KeyholeError("invalid_token");
  try {
    const body = bytes.subarray(0, BODY_LENGTH);
    const stored = new DataView(bytes.buffer, bytes.byteOffset + BODY_LENGTH, 4).getUint32(
      0,
      false,
    );
    if (crc32(body) !== stored) throw new KeyholeError("invalid_token");
    return new AgentToken(
      body.subarray(0, TOKEN_ID_LENGTH),
      body.subarray(TOKEN_ID_LENGTH, TOKEN_ID_LENGTH + SEED_LENGTH),
      body.subarray(TOKEN_ID_LENGTH + SEED_LENGTH),
    );
  } finally {
    zeroize(bytes);
  }
}

/** The agent's `Authorization` header value: `Keyhole <b64u token_id>.<b64u auth_key>`. */
export function formatAgentAuthorization(tokenId: Uint8Array, authKey: Uint8Array): string {
  return `Keyhole ${encodeBase64url(tokenId)}.${encodeBase64url(authKey)}`;
}

/** Parses an agent `Authorization` header, or returns null when it is not one. */
export function parseAgentAuthorization(
  header: string,
): { tokenId: Uint8Array; authKey: Uint8Array } | null {
  if (typeof header !== "string" || !header.startsWith("Keyhole ")) return null;
  const parts = header.slice("Keyhole ".length).split(".");
  if (parts.length !== 2) return null;
  const tokenId = tryDecodeBase64url(parts[0] as string);
  const authKey = tryDecodeBase64url(parts[1] as string);
  if (tokenId?.length !== TOKEN_ID_LENGTH || authKey?.length !== 32) return null;
  return { tokenId, authKey };
}

/** What the server HMACs with its pepper: `"keyhole/v1/verifier" ‖ token_id ‖ auth_key`. */
export function verifierMessage(tokenId: Uint8Array, authKey: Uint8Array): Uint8Array {
  return concatBytes(label("verifier"), tokenId, authKey);
}

/** Decodes a base64url token id (16 bytes) as used in URLs and JSON. */
export function decodeTokenId(text: string): Uint8Array {
  return decodeBase64url(text, TOKEN_ID_LENGTH);
}
