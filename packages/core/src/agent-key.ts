/**
 * The agent key statement `KHK1`, signed by the owner (FORMATS.md):
 *
 *   msg = LP("keyhole/v1/agent-key") ‖ LP(vault_id) ‖ LP(agent_id) ‖ LP(agent_pk) ‖ u64(created_at_ms)
 *
 * The owner client verifies it before every wrap for that agent, so a server that swaps in a
 * public key of its own is caught before any DEK is sealed to it.
 */
import { concatBytes, lp, u64 } from "./bytes.js";
import { type SigningKey, sign, verify } from "./keys.js";

/** What an agent key signature covers. */
export interface AgentKeyStatement {
  readonly vaultId: string;
  readonly agentId: string;
  /** The agent's raw X25519 public key (32 bytes). */
  readonly agentPublicKey: Uint8Array;
  readonly createdAt: number;
}

/** The bytes the owner signs. */
export function encodeAgentKeyMessage(statement: AgentKeyStatement): Uint8Array {
  return concatBytes(
    lp("keyhole/v1/agent-key"),
    lp(statement.vaultId),
    lp(statement.agentId),
    lp(statement.agentPublicKey),
    u64(statement.createdAt),
  );
}

/** Signs an agent key statement with the owner's key. */
export async function signAgentKey(
  owner: SigningKey,
  statement: AgentKeyStatement,
): Promise<Uint8Array> {
  return sign(owner, encodeAgentKeyMessage(statement));
}

/** Verifies an agent key statement; false for any malformed input. */
export async function verifyAgentKey(
  ownerPublicKey: Uint8Array,
  statement: AgentKeyStatement,
  signature: Uint8Array,
): Promise<boolean> {
  if (statement.agentPublicKey.length !== 32) return false;
  return verify(ownerPublicKey, encodeAgentKeyMessage(statement), signature);
}
