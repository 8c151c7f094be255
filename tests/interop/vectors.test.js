// (d) The shared vectors in tests/vectors: RFC 8037 Appendix A with WebCrypto and jose,
// keybound's keys with jose, and every request vector through `keybound verify`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EmbeddedJWK, calculateJwkThumbprint, compactVerify, importJWK } from "jose";
import { b64u, hex, keybound, readVector, sha256 } from "./helpers.js";

const enc = new TextEncoder();

describe("RFC 8037 Appendix A", () => {
  const v = readVector("rfc8037.json");

  test("A.1/A.2: the private key's public half", async () => {
    const priv = await crypto.subtle.importKey("jwk", v.a1_private_jwk, { name: "Ed25519" }, true, ["sign"]);
    const exported = await crypto.subtle.exportKey("jwk", priv);
    assert.equal(exported.x, v.a2_public_jwk.x);
    assert.equal(hex(Buffer.from(v.a1_private_jwk.d, "base64url")), v.a1_d_hex);
    assert.equal(hex(Buffer.from(v.a2_public_jwk.x, "base64url")), v.a2_x_hex);
  });

  test("A.3: the thumbprint", async () => {
    const t = v.a3_thumbprint;
    assert.equal(hex(await sha256(t.canonical_json)), t.sha256_hex);
    assert.equal(b64u(await sha256(t.canonical_json)), t.jkt);
    assert.equal(await calculateJwkThumbprint(v.a2_public_jwk), t.jkt);
  });

  test("A.4: the signature, made with WebCrypto", async () => {
    const a4 = v.a4_signature;
    const input = `${b64u(enc.encode(a4.protected_header))}.${b64u(enc.encode(a4.payload))}`;
    assert.equal(input, a4.signing_input);
    const priv = await crypto.subtle.importKey("jwk", v.a1_private_jwk, { name: "Ed25519" }, false, ["sign"]);
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, priv, enc.encode(input));
    assert.equal(b64u(sig), a4.signature);
    assert.equal(`${input}.${a4.signature}`, a4.jws);
  });

  test("A.5: the JWS verifies with jose, and a changed payload does not", async () => {
    const a4 = v.a4_signature;
    const key = await importJWK(v.a2_public_jwk, "EdDSA");
    const { payload, protectedHeader } = await compactVerify(a4.jws, key);
    assert.equal(new TextDecoder().decode(payload), a4.payload);
    assert.equal(protectedHeader.alg, "EdDSA");
    const [h, , s] = a4.jws.split(".");
    await assert.rejects(compactVerify(`${h}.${b64u(enc.encode("Example of Ed25519 signinG"))}.${s}`, key));
  });
});

describe("keybound's vectors", () => {
  test("keys.json: jose computes the same thumbprints", async () => {
    const keys = readVector("keys.json");
    for (const name of ["device", "device_p256", "other_device", "server", "other_server"]) {
      assert.equal(await calculateJwkThumbprint(keys[name].public_jwk), keys[name].jkt, name);
      assert.equal(await calculateJwkThumbprint(keys[name].private_jwk), keys[name].jkt, name);
    }
  });

  const args = (c) => {
    const r = c.request;
    const a = ["verify", "--method", r.method, "--url", r.url, "--proof", c.proof,
      "--now", String(r.now), "--max-skew", String(r.max_skew)];
    if (c.access_token !== undefined) {
      a.push("--access-token", c.access_token, "--jwks", JSON.stringify(c.jwks));
    }
    return a;
  };

  for (const c of readVector("valid.json").cases) {
    test(`valid/${c.name}: keybound verify accepts; jose verifies the proof`, async () => {
      const out = keybound(...args(c));
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.deepEqual(JSON.parse(out.stdout), c.expect.verified);
      const { protectedHeader } = await compactVerify(c.proof, EmbeddedJWK);
      assert.equal(protectedHeader.typ, "dpop+jwt");
      assert.equal(await calculateJwkThumbprint(protectedHeader.jwk), c.expect.verified.jkt);
    });
  }

  for (const c of readVector("invalid.json").cases) {
    test(`invalid/${c.name}: ${c.expect.error_code}`, () => {
      const out = keybound(...args(c));
      assert.equal(out.code, 1, out.stdout + out.stderr);
      const body = JSON.parse(out.stdout);
      assert.deepEqual([body.error, body.error_code], [c.expect.error, c.expect.error_code]);
      assert.equal(typeof body.error_description, "string");
    });
  }
});
