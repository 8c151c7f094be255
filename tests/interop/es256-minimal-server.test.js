// (d) ES256 (ECDSA P-256) proofs from the clients people already run, against the real
// `keybound-minimal` server over HTTP, through a whole session life: log in, call
// /api/me, refresh, call again, revoke from another device, and the revoked session
// refused on its next request and its next refresh.
//
// Two clients sign: panva's `dpop` and `oauth4webapi`. oauth4webapi signs its proofs
// inside `protectedResourceRequest`; for the two requests without an access token (the
// app's login and keybound's refresh, which are not OAuth token-endpoint requests) the
// test asks oauth4webapi's DPoP handle for the proof it adds to a token request.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { calculateThumbprint, generateKeyPair, generateProof } from "dpop";
import { createRemoteJWKSet, jwtVerify } from "jose";
import * as oauth from "oauth4webapi";
import { startServer } from "./server.js";

/** Sends one request; returns { status, headers, body }. */
async function send(url, method, headers, body) {
  if (body !== undefined) headers.set("content-type", "application/json");
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/** A client signing with panva's `dpop` and a non-extractable P-256 key. */
async function dpopClient(origin) {
  const keypair = await generateKeyPair("ES256");
  assert.equal(keypair.privateKey.extractable, false);
  let nonce;
  return {
    jkt: await calculateThumbprint(keypair.publicKey),
    async request(method, path, { accessToken, body } = {}) {
      for (let attempt = 0; ; attempt++) {
        const url = `${origin}${path}`;
        const headers = new Headers({
          dpop: await generateProof(keypair, url, method, nonce, accessToken),
        });
        if (accessToken) headers.set("authorization", `DPoP ${accessToken}`);
        const res = await send(url, method, headers, body);
        nonce = res.headers.get("dpop-nonce") ?? nonce;
        if (res.status === 401 && res.body?.error === "use_dpop_nonce" && attempt === 0) continue;
        return res;
      }
    },
  };
}

/** A client signing with oauth4webapi's DPoP handle and a non-extractable P-256 key. */
async function oauth4webapiClient(origin) {
  const keypair = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign", "verify"],
  );
  const handle = oauth.DPoP({ client_id: "keybound-interop" }, keypair);
  const options = { DPoP: handle, [oauth.allowInsecureRequests]: true };
  return {
    jkt: await handle.calculateThumbprint(),
    async request(method, path, { accessToken, body } = {}) {
      const url = new URL(`${origin}${path}`);
      for (let attempt = 0; ; attempt++) {
        if (accessToken) {
          try {
            const res = await oauth.protectedResourceRequest(
              accessToken, method, url, new Headers(), undefined, options,
            );
            const text = await res.text();
            return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
          } catch (err) {
            if (oauth.isDPoPNonceError(err) && attempt === 0) continue;
            if (err instanceof oauth.WWWAuthenticateChallengeError) {
              const res = err.response;
              return { status: res.status, headers: res.headers, body: await res.json() };
            }
            throw err;
          }
        }
        const headers = new Headers();
        await handle.addProof(url, headers, method);
        const res = await send(url.href, method, headers, body);
        handle.cacheNonce(res, url);
        if (res.status === 401 && res.body?.error === "use_dpop_nonce" && attempt === 0) continue;
        return res;
      }
    },
  };
}

const clients = { "dpop (panva)": dpopClient, oauth4webapi: oauth4webapiClient };

for (const [name, makeClient] of Object.entries(clients)) {
  for (const nonce of ["off", "on"]) {
    describe(`${name} ES256 → keybound-minimal, nonces ${nonce}`, () => {
      let server;
      before(async () => {
        server = await startServer({ KEYBOUND_NONCE: nonce });
      });
      after(() => server.stop());

      test("log in, call, refresh, call, revoked from another device", async () => {
        const c = await makeClient(server.origin);
        const credentials = { username: "alice", password: "wonderland" };
        const login = await c.request("POST", "/api/login", { body: credentials });
        assert.equal(login.status, 200, JSON.stringify(login.body));

        // The access token is bound to the P-256 key's RFC 7638 thumbprint.
        const jwks = createRemoteJWKSet(new URL(`${server.origin}/.well-known/jwks.json`));
        const { payload } = await jwtVerify(login.body.access_token, jwks, {
          typ: "at+jwt",
          issuer: server.origin,
        });
        assert.equal(payload.cnf.jkt, c.jkt);

        const me = await c.request("GET", "/api/me", { accessToken: login.body.access_token });
        assert.equal(me.status, 200, JSON.stringify(me.body));
        assert.deepEqual(me.body, { user: "alice", session_id: login.body.session_id, binding: "dpop" });

        const refreshed = await c.request("POST", "/session/refresh", {
          body: { refresh_token: login.body.refresh_token },
        });
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
        assert.equal(refreshed.body.session_id, login.body.session_id);
        const at = refreshed.body.access_token;
        const again = await c.request("GET", "/api/me", { accessToken: at });
        assert.equal(again.status, 200, JSON.stringify(again.body));

        // A second device of the same user revokes the first session.
        const other = await makeClient(server.origin);
        const otherLogin = await other.request("POST", "/api/login", { body: credentials });
        assert.equal(otherLogin.status, 200);
        const revoke = await other.request(
          "DELETE",
          `/session/sessions/${login.body.session_id}`,
          { accessToken: otherLogin.body.access_token },
        );
        assert.equal(revoke.status, 200, JSON.stringify(revoke.body));

        const revoked = await c.request("GET", "/api/me", { accessToken: at });
        assert.equal(revoked.status, 401);
        assert.equal(revoked.body.error, "invalid_token");
        assert.equal(revoked.body.error_code, "session_revoked");
        const challenge = revoked.headers.get("www-authenticate");
        assert.match(challenge, /^DPoP error="invalid_token"/);
        assert.match(challenge, /algs="EdDSA ES256"/);

        const refused = await c.request("POST", "/session/refresh", {
          body: { refresh_token: refreshed.body.refresh_token },
        });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.equal(refused.body.error, "invalid_grant");
      });

      test("a proof signed by another P-256 key is refused", async () => {
        const c = await makeClient(server.origin);
        const login = await c.request("POST", "/api/login", {
          body: { username: "bob", password: "builder" },
        });
        assert.equal(login.status, 200);
        const thief = await makeClient(server.origin);
        const res = await thief.request("GET", "/api/me", { accessToken: login.body.access_token });
        assert.equal(res.status, 401);
        assert.equal(res.body.error, "invalid_token");
        assert.equal(res.body.error_code, "jkt_mismatch");
      });
    });
  }
}
