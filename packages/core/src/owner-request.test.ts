import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { before, describe, it } from "node:test";
import { makeOwner, type Owner } from "./fixtures.test.helper.js";
import {
  concatBytes,
  encodeBase64url,
  encodeInitProofMessage,
  encodeOwnerRequestMessage,
  formatOwnerAuthorization,
  lp,
  OWNER_REQUEST_WINDOW_MS,
  type OwnerRequest,
  parseOwnerAuthorization,
  randomBytes,
  sign,
  u64,
  verify,
} from "./index.js";

const emptyHash = new Uint8Array(createHash("sha256").update("").digest());

describe("owner request signature", () => {
  let owner: Owner;
  let request: OwnerRequest;

  before(async () => {
    owner = await makeOwner();
    request = {
      vaultId: "vlt_v",
      method: "delete",
      pathWithQuery: "/v1/owner/grants/bot/db?x=1",
      timestamp: 1_767_225_600_123,
      nonce: randomBytes(16),
      bodyHash: emptyHash,
    };
  });

  it("encodes LP(label) ‖ LP(vault) ‖ LP(METHOD) ‖ LP(path) ‖ u64(ts) ‖ LP(nonce) ‖ SHA-256(body)", () => {
    assert.deepEqual(
      encodeOwnerRequestMessage(request),
      concatBytes(
        lp("keyhole/v1/owner-request"),
        lp("vlt_v"),
        lp("DELETE"),
        lp("/v1/owner/grants/bot/db?x=1"),
        u64(request.timestamp),
        lp(request.nonce),
        emptyHash,
      ),
    );
  });

  it("upper-cases the method, so 'get' and 'GET' sign the same bytes", () => {
    assert.deepEqual(
      encodeOwnerRequestMessage({ ...request, method: "get" }),
      encodeOwnerRequestMessage({ ...request, method: "GET" }),
    );
  });

  it("a signature covers every field: changing any one fails verification", async () => {
    const message = encodeOwnerRequestMessage(request);
    const sig = await sign(owner.signing, message);
    assert.equal(await verify(owner.signing.publicKey, message, sig), true);
    const variants: OwnerRequest[] = [
      { ...request, vaultId: "vlt_w" },
      { ...request, method: "POST" },
      { ...request, pathWithQuery: "/v1/owner/grants/bot/db?x=2" },
      { ...request, timestamp: request.timestamp + 1 },
      { ...request, nonce: randomBytes(16) },
      { ...request, bodyHash: new Uint8Array(createHash("sha256").update("{}").digest()) },
    ];
    for (const variant of variants) {
      assert.equal(
        await verify(owner.signing.publicKey, encodeOwnerRequestMessage(variant), sig),
        false,
      );
    }
  });

  it("the Authorization header round-trips timestamp, nonce and signature", () => {
    const sig = randomBytes(64);
    const header = formatOwnerAuthorization(request.timestamp, request.nonce, sig);
    assert.equal(
      header,
      `Keyhole-Owner ${request.timestamp}.${encodeBase64url(request.nonce)}.${encodeBase64url(sig)}`,
    );
    assert.deepEqual(parseOwnerAuthorization(header), {
      timestamp: request.timestamp,
      nonce: request.nonce,
      signature: sig,
    });
  });

  it("parseOwnerAuthorization returns null for malformed headers", () => {
    const n = encodeBase64url(randomBytes(16));
    const s = encodeBase64url(randomBytes(64));
    for (const header of [
      `Keyhole 1.${n}.${s}`,
      `keyhole-owner 1.${n}.${s}`,
      `Keyhole-Owner 0.${n}.${s}`,
      `Keyhole-Owner 0123.${n}.${s}`,
      `Keyhole-Owner -5.${n}.${s}`,
      `Keyhole-Owner 1e3.${n}.${s}`,
      `Keyhole-Owner 12345678901234567.${n}.${s}`,
      `Keyhole-Owner 9007199254740993.${n}.${s}`,
      `Keyhole-Owner 1.${encodeBase64url(randomBytes(15))}.${s}`,
      `Keyhole-Owner 1.${n}.${encodeBase64url(randomBytes(63))}`,
      `Keyhole-Owner 1.${n}.${s}=`,
      `Keyhole-Owner 1.${n}.${s}.x`,
      `Keyhole-Owner 1.${n}`,
      "",
    ]) {
      assert.equal(parseOwnerAuthorization(header), null, header.slice(0, 30));
    }
  });

  it("the replay window is 60 seconds", () => {
    assert.equal(OWNER_REQUEST_WINDOW_MS, 60_000);
  });
});

describe("init proof", () => {
  it("encodes LP(label) ‖ LP(vault) ‖ LP(bootstrap code) ‖ LP(sign pk) ‖ LP(enc pk)", () => {
    const signPk = randomBytes(32);
    const encPk = randomBytes(32);
    assert.deepEqual(
      encodeInitProofMessage("vlt_v", "CODE-1234", signPk, encPk),
      concatBytes(lp("keyhole/v1/init"), lp("vlt_v"), lp("CODE-1234"), lp(signPk), lp(encPk)),
    );
  });

  it("a proof for one vault or code does not verify for another", async () => {
    const owner = await makeOwner();
    const pk = owner.signing.publicKey;
    const proof = await sign(
      owner.signing,
      encodeInitProofMessage("vlt_v", "CODE", pk, owner.enc.publicKey),
    );
    assert.equal(
      await verify(pk, encodeInitProofMessage("vlt_v", "CODE", pk, owner.enc.publicKey), proof),
      true,
    );
    assert.equal(
      await verify(pk, encodeInitProofMessage("vlt_w", "CODE", pk, owner.enc.publicKey), proof),
      false,
    );
    assert.equal(
      await verify(pk, encodeInitProofMessage("vlt_v", "CODF", pk, owner.enc.publicKey), proof),
      false,
    );
    assert.equal(
      await verify(pk, encodeInitProofMessage("vlt_v", "CODE", pk, randomBytes(32)), proof),
      false,
    );
  });
});
