import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeBase64url, newId } from "@keyhole/core";
import {
  type AgentPin,
  type GrantPin,
  isGrantActive,
  type Pinned,
  parseAgentPins,
  parseGrantPins,
  withAgentsRevoked,
  withCurrentKey,
  withGrantPin,
  withoutGrantPin,
  withPendingKey,
} from "./pins.js";

const FPR = encodeBase64url(new Uint8Array(16).fill(1));
const agentPin: AgentPin = {
  name: "bot",
  enc_fpr: FPR,
  created_at: 1000,
  expires_at: null,
  revoked: false,
  pending: null,
};
const grantPin: GrantPin = { secret_name: "db", not_after: 0, allowed_hosts: ["db.example"] };

test("agent and grant pins parse back what they wrote; a config without them has none", () => {
  const agentId = newId("agent");
  const secretId = newId("secret");
  const agents = { [agentId]: { ...agentPin, pending: { enc_fpr: FPR, created_at: 2 } } };
  const grants = { [secretId]: { [agentId]: grantPin } };
  assert.deepEqual(parseAgentPins(JSON.parse(JSON.stringify(agents))), agents);
  assert.deepEqual(parseGrantPins(JSON.parse(JSON.stringify(grants))), grants);
  assert.deepEqual(parseAgentPins(undefined), {});
  assert.deepEqual(parseGrantPins(undefined), {});
});

test("malformed pins are refused", () => {
  const agentId = newId("agent");
  const secretId = newId("secret");
  const badAgents: unknown[] = [
    [],
    { "not-an-id": agentPin },
    { [agentId]: { ...agentPin, enc_fpr: "short" } },
    { [agentId]: { ...agentPin, revoked: "no" } },
    { [agentId]: { ...agentPin, created_at: -1 } },
    { [agentId]: { ...agentPin, pending: { enc_fpr: FPR } } },
  ];
  for (const bad of badAgents) assert.equal(parseAgentPins(bad), null, JSON.stringify(bad));
  const badGrants: unknown[] = [
    { [secretId]: { [agentId]: { ...grantPin, allowed_hosts: ["B.example"] } } },
    { [secretId]: { [agentId]: { ...grantPin, allowed_hosts: ["b.example", "a.example"] } } },
    { [secretId]: { [agentId]: { ...grantPin, not_after: 1.5 } } },
    { [agentId]: { [agentId]: grantPin } },
  ];
  for (const bad of badGrants) assert.equal(parseGrantPins(bad), null, JSON.stringify(bad));
});

test("a grant is active until the earlier of its own and its agent's expiry (exclusive)", () => {
  const grant = { ...grantPin, not_after: 5000 };
  assert.equal(isGrantActive(agentPin, grant, 4999), true);
  assert.equal(isGrantActive(agentPin, grant, 5000), false);
  const expiring = { ...agentPin, expires_at: 3000 };
  assert.equal(isGrantActive(expiring, grant, 2999), true);
  assert.equal(isGrantActive(expiring, grant, 3000), false);
  assert.equal(isGrantActive(expiring, grantPin, 3000), false);
  assert.equal(isGrantActive(agentPin, grantPin, Number.MAX_SAFE_INTEGER), true);
  assert.equal(isGrantActive({ ...agentPin, revoked: true }, grantPin, 0), false);
});

test("a revoke marks the agent revoked and forgets only its grants", () => {
  const bot = newId("agent");
  const other = newId("agent");
  const unknown = newId("agent");
  const s1 = newId("secret");
  const s2 = newId("secret");
  let config: Pinned = { agents: { [bot]: agentPin, [other]: agentPin }, grants: {} };
  config = withGrantPin(config, s1, bot, grantPin);
  config = withGrantPin(config, s1, other, grantPin);
  config = withGrantPin(config, s2, bot, grantPin);
  const revoked = withAgentsRevoked(config, [bot, unknown], { ...agentPin, name: "ghost" });
  assert.equal(revoked.agents[bot]?.revoked, true);
  assert.equal(revoked.agents[bot]?.name, "bot");
  assert.equal(revoked.agents[unknown]?.name, "ghost", "an unknown id is pinned as revoked");
  assert.equal(revoked.agents[unknown]?.revoked, true);
  assert.equal(revoked.agents[other]?.revoked, false);
  assert.deepEqual(revoked.grants, { [s1]: { [other]: grantPin } });
  assert.deepEqual(withoutGrantPin(withoutGrantPin(config, s1, bot), s1, other).grants, {
    [s2]: { [bot]: grantPin },
  });
});

test("a pending rotate key becomes current only when the rotate is recorded", () => {
  const bot = newId("agent");
  const key = { enc_fpr: encodeBase64url(new Uint8Array(16).fill(2)), created_at: 7 };
  const config: Pinned = { agents: { [bot]: agentPin }, grants: {} };
  const pending = withPendingKey(config, bot, key);
  assert.equal(pending.agents[bot]?.enc_fpr, FPR);
  assert.deepEqual(pending.agents[bot]?.pending, key);
  const current = withCurrentKey(pending, bot, key);
  assert.deepEqual(
    [current.agents[bot]?.enc_fpr, current.agents[bot]?.created_at, current.agents[bot]?.pending],
    [key.enc_fpr, 7, null],
  );
});
