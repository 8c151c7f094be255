// (c) panva's `dpop` proofs against the real `keybound-minimal` server: log in, call
// /api/me, refresh, log out; with nonces on, the one `use_dpop_nonce` challenge. The
// access tokens verify with `jose` against the server's /.well-known/jwks.json.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { calculateThumbprint, generateKeyPair, generateProof } from "dpop";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { startServer } from "./server.js";

/**
 * A browser-like client: a non-extractable Ed25519 key, a dpop proof per request, the
 * latest DPoP-Nonce kept, and one retry when challenged for a nonce.
 */
async function client(origin) {
  const keypair = await generateKeyPair("Ed25519");
  const c = { keypair, nonce: undefined, challenges: 0 };
  c.send = async (method, path, { accessToken, body } = {}) => {
    for (let attempt = 0; ; attempt++) {
      const url = `${origin}${path}`;
      const proof = await generateProof(keypair, url, method, c.nonce, accessToken);
      const headers = { DPoP: proof };
      if (accessToken) headers.Authorization = `DPoP ${accessToken}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      c.nonce = res.headers.get("dpop-nonce") ?? c.nonce;
      const text = await res.text();
      const json = text ? JSON.parse(text) : null;
      if (res.status === 401 && json?.error === "use_dpop_nonce" && attempt === 0) {
        c.challenges++;
        continue;
      }
      return { status: res.status, headers: res.headers, body: json };
    }
  };
  return c;
}

for (const nonce of ["off", "on"]) {
  describe(`dpop (panva) → keybound-minimal, nonces ${nonce}`, () => {
    let server;
    before(async () => {
      server = await startServer({ KEYBOUND_NONCE: nonce });
    });
    after(() => server.stop());

    test("log in, call /api/me, refresh, log out", async () => {
      const c = await client(server.origin);
      const jkt = await calculateThumbprint(c.keypair.publicKey);

      const wrong = await c.send("POST", "/api/login", {
        body: { username: "alice", password: "nope" },
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error, "invalid_credentials");

      const login = await c.send("POST", "/api/login", {
        body: { username: "alice", password: "wonderland" },
      });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      assert.equal(login.headers.get("cache-control"), "no-store");
      assert.equal(login.body.token_type, "DPoP");
      assert.ok(Math.abs(login.body.server_time - Date.now() / 1000) < 5);

      // The access token is an at+jwt bound to dpop's key, verifiable with jose.
      const jwks = createRemoteJWKSet(new URL(`${server.origin}/.well-known/jwks.json`));
      const { payload, protectedHeader } = await jwtVerify(login.body.access_token, jwks, {
        typ: "at+jwt",
        issuer: server.origin,
        subject: "alice",
      });
      assert.equal(protectedHeader.alg, "EdDSA");
      assert.equal(payload.cnf.jkt, jkt);
      assert.equal(payload.sid, login.body.session_id);

      const me = await c.send("GET", "/api/me", { accessToken: login.body.access_token });
      assert.equal(me.status, 200, JSON.stringify(me.body));
      assert.deepEqual(me.body, { user: "alice", session_id: login.body.session_id, binding: "dpop" });

      const refreshed = await c.send("POST", "/session/refresh", {
        body: { refresh_token: login.body.refresh_token },
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      assert.equal(refreshed.body.session_id, login.body.session_id);
      assert.notEqual(refreshed.body.refresh_token, login.body.refresh_token);
      const at = refreshed.body.access_token;

      const sessions = await c.send("GET", "/session/sessions", { accessToken: at });
      assert.equal(sessions.status, 200);
      assert.equal(sessions.body.sessions.length, 1);
      assert.equal(sessions.body.sessions[0].current, true);

      const logout = await c.send("POST", "/session/logout", { accessToken: at });
      assert.equal(logout.status, 204);

      const closed = await c.send("GET", "/api/me", { accessToken: at });
      assert.equal(closed.status, 401);
      assert.equal(closed.body.error, "invalid_token");
      assert.equal(closed.body.error_code, "session_closed");
      assert.match(closed.headers.get("www-authenticate"), /^DPoP error="invalid_token"/);

      assert.equal(c.challenges, nonce === "on" ? 1 : 0);
    });

    test("a proof without the access token's ath is refused", async () => {
      const c = await client(server.origin);
      const login = await c.send("POST", "/api/login", {
        body: { username: "bob", password: "builder" },
      });
      assert.equal(login.status, 200);
      const url = `${server.origin}/api/me`;
      const proof = await generateProof(c.keypair, url, "GET", c.nonce);
      const res = await fetch(url, {
        headers: { DPoP: proof, Authorization: `DPoP ${login.body.access_token}` },
      });
      assert.equal(res.status, 401);
      const body = await res.json();
      assert.equal(body.error, "invalid_dpop_proof");
      assert.equal(body.error_code, "ath_missing");
    });
  });
}
