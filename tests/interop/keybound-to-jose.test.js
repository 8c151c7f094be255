// (b) Proofs from `keybound proof` verify with jose plus the RFC 9449 §4.3 claim checks;
// (c) access tokens from `keybound token` verify with jose against `keybound jwks`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  EmbeddedJWK,
  calculateJwkThumbprint,
  compactVerify,
  createLocalJWKSet,
  errors,
  jwtVerify,
} from "jose";
import { b64u, keyboundOk, nowSecs, setup, sha256 } from "./helpers.js";

const URL = "https://api.example.com/orders";

/**
 * Verifies a DPoP proof the way RFC 9449 §4.3 asks, with jose for the JWS: returns the
 * claims, throws on any failure.
 */
async function verifyProof(proof, { method, url, accessToken, maxSkew = 60 }) {
  const { payload, protectedHeader } = await compactVerify(proof, EmbeddedJWK, {
    algorithms: ["EdDSA", "Ed25519", "ES256"],
  });
  assert.equal(protectedHeader.typ, "dpop+jwt");
  const jwk = protectedHeader.jwk;
  if (protectedHeader.alg === "ES256") {
    assert.equal(jwk.kty, "EC");
    assert.equal(jwk.crv, "P-256");
  } else {
    assert.ok(["EdDSA", "Ed25519"].includes(protectedHeader.alg));
    assert.equal(jwk.kty, "OKP");
    assert.equal(jwk.crv, "Ed25519");
  }
  for (const member of ["d", "p", "q", "dp", "dq", "qi", "k"]) {
    assert.equal(jwk[member], undefined, `jwk must not carry ${member}`);
  }
  const claims = JSON.parse(new TextDecoder().decode(payload));
  assert.equal(claims.htm, method);
  const expected = new globalThis.URL(url);
  assert.equal(claims.htu, `${expected.origin}${expected.pathname}`);
  assert.equal(typeof claims.iat, "number");
  assert.ok(Math.abs(claims.iat - nowSecs()) <= maxSkew, "iat within the window");
  assert.equal(typeof claims.jti, "string");
  assert.ok(claims.jti.length >= 16, "jti has enough entropy");
  if (accessToken !== undefined) {
    assert.equal(claims.ath, b64u(await sha256(accessToken)));
  }
  return { claims, jwk };
}

for (const alg of ["EdDSA", "ES256"]) describe(`keybound proof (${alg}) → jose + RFC 9449 checks`, () => {
  const s = setup(alg);

  test("the proof names its algorithm and its key kind", async () => {
    const proof = keyboundOk("proof", "--key", s.device, "--method", "GET", "--url", URL);
    const header = JSON.parse(Buffer.from(proof.split(".")[0], "base64url").toString());
    assert.equal(header.alg, alg);
    assert.equal(header.jwk.kty, alg === "ES256" ? "EC" : "OKP");
    if (alg === "ES256") {
      assert.equal(Buffer.from(proof.split(".")[2], "base64url").length, 64, "r || s, not DER");
    }
  });

  test("a proof without a token", async () => {
    const proof = keyboundOk("proof", "--key", s.device, "--method", "GET", "--url", `${URL}?q=1#f`);
    const { claims, jwk } = await verifyProof(proof, { method: "GET", url: URL });
    assert.equal(claims.ath, undefined);
    assert.equal(await calculateJwkThumbprint(jwk), s.jkt, "jose and keybound agree on jkt");
  });

  test("a proof with ath and a nonce", async () => {
    const token = keyboundOk("token", "--key", s.server, "--sub", "u", "--sid", "s", "--jkt", s.jkt);
    const proof = keyboundOk(
      "proof", "--key", s.device, "--method", "POST", "--url", URL,
      "--access-token", token, "--nonce", "srv-nonce-1",
    );
    const { claims } = await verifyProof(proof, { method: "POST", url: URL, accessToken: token });
    assert.equal(claims.nonce, "srv-nonce-1");
  });

  test("every proof has a fresh jti", async () => {
    const jtis = new Set();
    for (let i = 0; i < 5; i++) {
      const proof = keyboundOk("proof", "--key", s.device, "--method", "GET", "--url", URL);
      jtis.add((await verifyProof(proof, { method: "GET", url: URL })).claims.jti);
    }
    assert.equal(jtis.size, 5);
  });

  test("the checks above can fail: tampered, wrong method, old iat, wrong ath", async () => {
    const proof = keyboundOk("proof", "--key", s.device, "--method", "GET", "--url", URL);
    const [h, p, sig] = proof.split(".");
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    await assert.rejects(verifyProof(`${h}.${p}.${flipped}`, { method: "GET", url: URL }),
      errors.JWSSignatureVerificationFailed);
    await assert.rejects(verifyProof(proof, { method: "POST", url: URL }), assert.AssertionError);
    const old = keyboundOk(
      "proof", "--key", s.device, "--method", "GET", "--url", URL, "--iat", String(nowSecs() - 600),
    );
    await assert.rejects(verifyProof(old, { method: "GET", url: URL }), assert.AssertionError);
    const bound = keyboundOk(
      "proof", "--key", s.device, "--method", "GET", "--url", URL, "--access-token", "token-a",
    );
    await assert.rejects(
      verifyProof(bound, { method: "GET", url: URL, accessToken: "token-b" }),
      assert.AssertionError,
    );
  });
});

describe("keybound token → jose jwtVerify with the JWKS", () => {
  const s = setup();

  test("a token verifies with its claims and binding", async () => {
    const token = keyboundOk(
      "token", "--key", s.server, "--sub", "user-9", "--sid", "sess-9", "--jkt", s.jkt,
      "--ttl", "120", "--iss", "https://auth.example",
    );
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(s.jwks), {
      typ: "at+jwt",
      algorithms: ["EdDSA"],
      issuer: "https://auth.example",
      requiredClaims: ["sub", "sid", "jti", "iat", "exp", "cnf"],
    });
    assert.equal(protectedHeader.kid, s.jwks.keys[0].kid);
    assert.equal(payload.sub, "user-9");
    assert.equal(payload.sid, "sess-9");
    assert.equal(payload.cnf.jkt, s.jkt);
    assert.equal(payload.exp - payload.iat, 120);
  });

  test("jose rejects an expired token and a token from another server", async () => {
    const expired = keyboundOk(
      "token", "--key", s.server, "--sub", "u", "--sid", "s", "--jkt", s.jkt,
      "--iat", String(nowSecs() - 1000), "--ttl", "300",
    );
    await assert.rejects(
      jwtVerify(expired, createLocalJWKSet(s.jwks), { typ: "at+jwt" }),
      errors.JWTExpired,
    );
    const other = setup();
    const foreign = keyboundOk("token", "--key", other.server, "--sub", "u", "--sid", "s", "--jkt", s.jkt);
    await assert.rejects(
      jwtVerify(foreign, createLocalJWKSet(s.jwks), { typ: "at+jwt" }),
      errors.JWKSNoMatchingKey,
    );
  });
});
