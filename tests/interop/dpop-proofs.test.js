// (a) Proofs made by panva's `dpop` with Ed25519 and ES256 keys pass `keybound verify`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { calculateThumbprint, generateKeyPair, generateProof } from "dpop";
import { keybound, keyboundOk, setup } from "./helpers.js";

const URL = "https://api.example.com/orders";

describe("dpop (panva) → keybound verify", async () => {
  const s = setup();
  const keypair = await generateKeyPair("Ed25519");
  const jkt = await calculateThumbprint(keypair.publicKey);

  test("a proof without an access token is accepted", async () => {
    const proof = await generateProof(keypair, URL, "GET");
    const out = keybound("verify", "--method", "GET", "--url", `${URL}?page=2`, "--proof", proof);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const verified = JSON.parse(out.stdout);
    assert.equal(verified.jkt, jkt, "keybound and dpop agree on the thumbprint");
    assert.equal(verified.proof.htm, "GET");
    assert.equal(verified.proof.htu, URL);
  });

  test("a proof bound to a keybound access token is accepted", async () => {
    const token = keyboundOk(
      "token", "--key", s.server, "--sub", "user-1", "--sid", "sess-1", "--jkt", jkt,
    );
    const proof = await generateProof(keypair, URL, "POST", undefined, token);
    const out = keybound(
      "verify", "--method", "POST", "--url", URL, "--proof", proof,
      "--access-token", token, "--jwks", s.jwksArg,
    );
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const verified = JSON.parse(out.stdout);
    assert.equal(verified.access_token.sub, "user-1");
    assert.equal(verified.access_token.cnf.jkt, jkt);
  });

  test("a proof with a server nonce is accepted and the nonce reported", async () => {
    const proof = await generateProof(keypair, URL, "GET", "n-0S6_WzA2Mj");
    const out = keybound("verify", "--method", "GET", "--url", URL, "--proof", proof);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.equal(JSON.parse(out.stdout).proof.nonce, "n-0S6_WzA2Mj");
  });

  test("keybound still checks dpop's proofs: wrong method, other URL, another token", async () => {
    const proof = await generateProof(keypair, URL, "POST");
    let out = keybound("verify", "--method", "GET", "--url", URL, "--proof", proof);
    assert.equal(out.code, 1);
    assert.deepEqual(pick(JSON.parse(out.stdout)), ["invalid_dpop_proof", "htm_mismatch"]);
    out = keybound("verify", "--method", "POST", "--url", `${URL}/1`, "--proof", proof);
    assert.deepEqual(pick(JSON.parse(out.stdout)), ["invalid_dpop_proof", "htu_mismatch"]);
    const token = keyboundOk("token", "--key", s.server, "--sub", "u", "--sid", "s", "--jkt", s.jkt);
    const bound = await generateProof(keypair, URL, "GET", undefined, token);
    out = keybound(
      "verify", "--method", "GET", "--url", URL, "--proof", bound,
      "--access-token", token, "--jwks", s.jwksArg,
    );
    assert.equal(out.code, 1);
    assert.deepEqual(pick(JSON.parse(out.stdout)), ["invalid_token", "jkt_mismatch"]);
  });

  test("dpop proofs with ES256 (P-256) keys are accepted, jkt agreed", async () => {
    const es = await generateKeyPair("ES256");
    const esJkt = await calculateThumbprint(es.publicKey);
    const token = keyboundOk("token", "--key", s.server, "--sub", "u", "--sid", "s", "--jkt", esJkt);
    const proof = await generateProof(es, URL, "GET", undefined, token);
    const out = keybound(
      "verify", "--method", "GET", "--url", URL, "--proof", proof,
      "--access-token", token, "--jwks", s.jwksArg,
    );
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const verified = JSON.parse(out.stdout);
    assert.equal(verified.jkt, esJkt, "keybound and dpop agree on the P-256 thumbprint");
    assert.equal(verified.access_token.cnf.jkt, esJkt);
  });

  test("an ES256 proof with a flipped signature bit is refused", async () => {
    const es = await generateKeyPair("ES256");
    const proof = await generateProof(es, URL, "GET");
    const [h, p, sig] = proof.split(".");
    const bytes = Buffer.from(sig, "base64url");
    bytes[40] ^= 1;
    const out = keybound(
      "verify", "--method", "GET", "--url", URL, "--proof", `${h}.${p}.${bytes.toString("base64url")}`,
    );
    assert.equal(out.code, 1);
    assert.deepEqual(pick(JSON.parse(out.stdout)), ["invalid_dpop_proof", "invalid_signature"]);
  });
});

function pick(body) {
  return [body.error, body.error_code];
}
