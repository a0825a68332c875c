/**
 * The third schema step, limits the server enforces (SECURITY-TESTS #16):
 *
 * - `agents.allowed_cidrs`: the source ranges an agent's token is accepted from, a JSON array of
 *   canonical CIDR text (core `canonicalCidrs`); `[]` means anywhere.
 * - `grants.max_uses` and `grants.uses`: a grant that may be read `max_uses` times (0: no
 *   limit). `uses` counts successful reads while a limit is set. Both survive the re-wraps of
 *   `secret set` and `agent rotate`; `grant add` sets a fresh budget.
 */
export const name = "agent-cidrs-grant-uses";

export const sql = `
ALTER TABLE agents ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE grants ADD COLUMN max_uses INTEGER NOT NULL DEFAULT 0 CHECK (max_uses >= 0);
ALTER TABLE grants ADD COLUMN uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0);
`;
