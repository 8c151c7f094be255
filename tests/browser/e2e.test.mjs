// End to end against the real server: examples/minimal (issue 4) with short lifetimes,
// driven through the npm package in headless Chromium. Skipped until examples/minimal
// exists (or KEYBOUND_MINIMAL_BIN points at its binary).
//
// What the tests rely on, from issue 4 and DESIGN §3: KEYBOUND_LISTEN,
// KEYBOUND_PUBLIC_ORIGIN, KEYBOUND_STORE=memory and the KEYBOUND_*_SECS / KEYBOUND_NONCE
// settings; POST /api/login {username, password} -> token response (401
// {"error":"invalid_credentials"} otherwise); GET /api/me -> {user, session_id}; the
// session router under /session (refresh, logout, sessions, sessions/{id},
// sessions/revoke-others); a refresh moves the idle deadline; 401 answers carry
// `error_code` session_revoked / session_closed / session_expired for ended sessions and
// invalid_dpop_proof + iat_too_old for a stale proof; responses carry a Date header and,
// with nonces on, DPoP-Nonce. The page runs on the server's own origin: Playwright
// answers /__kb/* (the package) and /__test/* (test pages) from disk.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  SDK_MISSING,
  countRequests,
  eventually,
  launch,
  openApp,
  sdkBuilt,
  serveFiles,
  serverAvailable,
  sleep,
  startServer,
} from "./lib/harness.mjs";

const haveServer = sdkBuilt && (await serverAvailable());
const skip = !sdkBuilt ? SDK_MISSING : !haveServer && "examples/minimal is not available yet";
const ALICE = JSON.stringify({ username: "alice", password: "wonderland" });

/** A server with `env`, a browser, and fresh contexts (devices) on the server's origin. */
function fixture(env) {
  const f = { server: null, browser: null, contexts: [] };
  before(async () => {
    f.server = await startServer(env);
    f.browser = await launch();
  });
  after(async () => {
    await f.browser?.close();
    await f.server?.stop();
  });
  f.device = async () => {
    const context = await f.browser.newContext();
    await serveFiles(context, f.server.origin);
    f.contexts.push(context);
    return context;
  };
  f.page = async (context, options = {}) => {
    const page = await openApp(context, f.server.origin);
    await page.evaluate((o) => start(o), { storageName: "e2e", ...options });
    return page;
  };
  return f;
}

const login = (page) => page.evaluate((body) => kb.login("/api/login", { body }), ALICE);
const me = (page) =>
  page.evaluate(async () => {
    const res = await kb.fetch("/api/me");
    return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
  });
const events = (page, type) =>
  page.evaluate((type) => window.events.filter((e) => !type || e.type === type), type);
const state = (page) => page.evaluate(() => kb.state);

describe("a session's life", { skip }, () => {
  const f = fixture({
    KEYBOUND_ACCESS_TTL_SECS: "4",
    KEYBOUND_REFRESH_GRACE_SECS: "2",
    KEYBOUND_IDLE_TIMEOUT_SECS: "120",
    KEYBOUND_ABSOLUTE_LIFETIME_SECS: "600",
  });

  test("login, signed requests, proactive refresh while in use, logout forgets key and tokens", async () => {
    const context = await f.device();
    const page = await f.page(context);
    const refreshes = countRequests(context, "/session/refresh");
    const tokens = new Set();
    page.on("response", async (response) => {
      if (/\/(api\/login|session\/refresh)$/.test(new URL(response.url()).pathname) && response.ok()) {
        const body = await response.json();
        tokens.add(body.access_token);
        tokens.add(body.refresh_token);
      }
    });
    const signed = [];
    page.on("request", (request) => {
      if (new URL(request.url()).pathname === "/api/me") signed.push(request.allHeaders());
    });

    const session = await login(page);
    assert.equal(await state(page), "active");
    assert.equal((await events(page, "login")).length, 1);
    const first = await me(page);
    assert.equal(first.status, 200);
    assert.equal(first.body.user, "alice");
    assert.equal(first.body.session_id, session.id);

    const headers = await signed[0];
    assert.match(headers.authorization, /^DPoP [\w-]+\.[\w-]+\.[\w-]+$/);
    const proof = await page.evaluate((p) => inspectProof(p), headers.dpop);
    assert.equal(proof.valid, true);
    assert.equal(proof.claims.htm, "GET");
    assert.equal(proof.claims.htu, `${f.server.origin}/api/me`);
    assert.equal(proof.claims.ath, await page.evaluate((t) => accessTokenHash(t), headers.authorization.slice(5)));
    assert.equal(proof.jkt, await page.evaluate(() => kb.thumbprint));

    // In use (touch) across the access token's 4 s life: refreshed before it expires.
    const touching = setInterval(() => page.evaluate(() => kb.touch()).catch(() => {}), 300);
    try {
      await eventually(async () => (await events(page, "refreshed")).length >= 1, 8_000, "a refresh");
    } finally {
      clearInterval(touching);
    }
    assert.ok(refreshes.POST >= 1);
    assert.equal((await me(page)).status, 200);
    assert.equal((await events(page, "error")).length, 0);

    await page.evaluate(() => kb.logout());
    assert.equal(await state(page), "closed");
    assert.equal((await events(page, "closed")).length, 1);
    assert.equal(await page.evaluate(() => kb.thumbprint), null);
    assert.equal(await page.evaluate(() => describeDeviceKey("e2e")), null);
    const stored = await page.evaluate(() => describeSession("e2e"));
    assert.equal(stored.ended, "closed");
    for (const token of tokens) assert.ok(!stored.strings.some((s) => s.includes(token)));
    const after = await page.evaluate(() => attempt(() => kb.fetch("/api/me")));
    assert.equal(after.code, "session_closed");
  });

  test("an idle app lets the access token lapse, and the next request refreshes first", async () => {
    const context = await f.device();
    const page = await f.page(context);
    const refreshes = countRequests(context, "/session/refresh");
    await login(page);
    await sleep(5_000);
    assert.equal(refreshes.total, 0, "no refresh without use");
    assert.equal((await me(page)).status, 200);
    assert.equal(refreshes.POST, 1);
  });

  test("a wrong password is refused with the server's code", async () => {
    const page = await f.page(await f.device());
    const result = await page.evaluate(() =>
      attempt(() => kb.login("/api/login", { body: JSON.stringify({ username: "alice", password: "no" }) })),
    );
    assert.equal(result.code, "invalid_credentials");
    assert.equal(result.status, 401);
    assert.equal(await state(page), "anonymous");
  });
});

describe("device keys", { skip }, () => {
  const f = fixture({});

  test("the WebCrypto key survives a reload, stays non-extractable and the session resumes", async () => {
    const context = await f.device();
    const logins = countRequests(context, "/api/login");
    const page = await f.page(context);
    await login(page);
    const thumbprint = await page.evaluate(() => kb.thumbprint);
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const resumed = await page.evaluate(() => start({ storageName: "e2e" }));
    assert.equal(resumed.state, "active");
    assert.equal(resumed.thumbprint, thumbprint);
    assert.equal((await me(page)).status, 200);
    assert.equal(logins.total, 1);
    const key = await page.evaluate(() => describeDeviceKey("e2e"));
    assert.equal(key.extractable, false);
    assert.equal(key.exportable, false);
  });

  test("the wasm key fallback logs in, signs and survives a reload", async () => {
    const context = await f.device();
    const page = await f.page(context, { forceWasmKeys: true });
    assert.equal(await page.evaluate(() => kb.keyKind), "wasm");
    await login(page);
    assert.equal((await me(page)).status, 200);
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const resumed = await page.evaluate(() => start({ storageName: "e2e", forceWasmKeys: true }));
    assert.equal(resumed.state, "active");
    assert.equal(resumed.keyKind, "wasm");
    assert.equal((await me(page)).status, 200);
  });
});

describe("stored tokens", { skip }, () => {
  const f = fixture({});

  test("are sealed at rest, and a tampered record is not used", async () => {
    const context = await f.device();
    const page = await f.page(context, { storageName: "sealed" });
    const tokens = [];
    page.on("response", async (response) => {
      if (new URL(response.url()).pathname === "/api/login" && response.ok()) {
        const body = await response.json();
        tokens.push(body.access_token, body.refresh_token);
      }
    });
    await login(page);
    const stored = await page.evaluate(() => describeSession("sealed"));
    assert.deepEqual(stored.fields, [
      "accessExpiresAt",
      "idleExpiresAt",
      "issuedAt",
      "jkt",
      "offset",
      "sealed",
      "sessionExpiresAt",
      "sid",
      "stamp",
      "v",
    ]);
    assert.equal(tokens.length, 2);
    for (const token of tokens) assert.ok(!stored.strings.some((s) => s.includes(token)));

    // Flip one byte of the ciphertext: the record no longer decrypts, so it is not used.
    await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const open = indexedDB.open("sealed");
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const store = open.result.transaction("kv", "readwrite").objectStore("kv");
            const get = store.get("session");
            get.onsuccess = () => {
              const record = get.result;
              const ct = new Uint8Array(record.sealed.ct);
              ct[0] ^= 1;
              record.sealed.ct = ct;
              store.put(record, "session").onsuccess = () => resolve();
            };
          };
        }),
    );
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const again = await page.evaluate(() => start({ storageName: "sealed" }));
    assert.equal(again.state, "anonymous");
  });
});

describe("no storage", { skip }, () => {
  const f = fixture({});

  test("where indexedDB.open throws, a session lives in the tab: login, signed requests, refresh, logout", async () => {
    const context = await f.device();
    await context.addInitScript(() => {
      IDBFactory.prototype.open = () => {
        throw new DOMException("The operation is insecure.", "SecurityError");
      };
    });
    const page = await f.page(context);
    assert.equal(await page.evaluate(() => kb.persistent), false);
    assert.equal(await page.evaluate(() => kb.keyKind), "webcrypto");
    const session = await login(page);
    assert.equal(await state(page), "active");
    assert.equal((await me(page)).status, 200);
    const extended = await page.evaluate(() => kb.extend());
    assert.equal(extended.id, session.id);
    assert.equal((await me(page)).status, 200);
    assert.equal((await events(page, "error")).length, 0);
    await page.evaluate(() => kb.logout());
    assert.equal(await state(page), "closed");
    // The tab's memory was all there was: a reload starts anonymous with a new key.
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const again = await page.evaluate(() => start({ storageName: "e2e" }));
    assert.equal(again.state, "anonymous");
  });
});

describe("server nonces", { skip }, () => {
  const f = fixture({ KEYBOUND_NONCE: "on" });

  test("a use_dpop_nonce challenge is answered with one retry", async () => {
    const context = await f.device();
    const logins = countRequests(context, "/api/login");
    const page = await f.page(context);
    await login(page);
    assert.equal(logins.POST, 2, "one challenge, one retry");
    assert.equal((await me(page)).status, 200);
    assert.equal((await events(page, "error")).length, 0);
  });
});

describe("several tabs", { skip }, () => {
  const f = fixture({
    KEYBOUND_ACCESS_TTL_SECS: "6",
    KEYBOUND_REFRESH_GRACE_SECS: "3",
    KEYBOUND_IDLE_TIMEOUT_SECS: "120",
  });

  test("four tabs near expiry: exactly one refresh reaches the server and all four keep working", async () => {
    const context = await f.device();
    const refreshes = countRequests(context, "/session/refresh");
    const tabs = [await f.page(context)];
    const session = await login(tabs[0]);
    for (let i = 1; i < 4; i++) tabs.push(await f.page(context));
    for (const tab of tabs) assert.equal(await state(tab), "active");

    // Wait until the access token is due (the last quarter of its life), then use all
    // four tabs at once.
    const dueIn = session.accessTokenExpiresAt - Date.now() - 1_000;
    await sleep(Math.max(0, dueIn));
    const results = await Promise.all(tabs.map((tab) => me(tab)));
    for (const r of results) assert.equal(r.status, 200);
    assert.equal(refreshes.POST, 1);
    await sleep(1_000);
    assert.equal(refreshes.POST, 1);

    const sessions = await Promise.all(tabs.map((tab) => tab.evaluate(() => kb.session)));
    for (const s of sessions) {
      assert.equal(s.id, session.id);
      assert.equal(s.accessTokenExpiresAt, sessions[0].accessTokenExpiresAt);
      assert.ok(s.accessTokenExpiresAt > session.accessTokenExpiresAt);
    }
  });

  test("logout in one tab closes the session in all of them", async () => {
    const context = await f.device();
    const a = await f.page(context, { storageName: "logout-tabs" });
    await login(a);
    const b = await f.page(context, { storageName: "logout-tabs" });
    assert.equal(await state(b), "active");
    await a.evaluate(() => kb.logout());
    await eventually(async () => (await state(b)) === "closed", 5_000, "closed in the other tab");
    assert.equal((await events(b, "closed")).length, 1);
    assert.equal(await b.evaluate(() => kb.thumbprint), null);
  });
});

describe("revocation", { skip }, () => {
  const f = fixture({});

  test("a session revoked from another device ends on its next request", async () => {
    const a = await f.page(await f.device());
    const b = await f.page(await f.device());
    const sa = await login(a);
    const sb = await login(b);
    const list = await b.evaluate(() => kb.sessions());
    const ids = list.map((s) => s.id);
    assert.ok(ids.includes(sa.id) && ids.includes(sb.id));
    assert.equal(list.find((s) => s.id === sb.id).current, true);
    assert.equal(list.find((s) => s.id === sa.id).current, false);

    await b.evaluate((id) => kb.revokeSession(id), sa.id);
    const refused = await me(a);
    assert.equal(refused.status, 401);
    assert.equal(await state(a), "revoked");
    assert.equal((await events(a, "revoked")).length, 1);
    const next = await a.evaluate(() => attempt(() => kb.fetch("/api/me")));
    assert.equal(next.code, "session_revoked");
    assert.equal((await me(b)).status, 200);
  });

  test("revokeOthers leaves only this session", async () => {
    const a = await f.page(await f.device());
    const b = await f.page(await f.device());
    await login(a);
    await login(b);
    await b.evaluate(() => kb.revokeOthers());
    assert.equal((await me(a)).status, 401);
    assert.equal(await state(a), "revoked");
    assert.equal((await me(b)).status, 200);
  });
});

describe("idle expiry", { skip }, () => {
  const f = fixture({
    KEYBOUND_ACCESS_TTL_SECS: "6",
    KEYBOUND_REFRESH_GRACE_SECS: "3",
    KEYBOUND_IDLE_TIMEOUT_SECS: "8",
    KEYBOUND_ABSOLUTE_LIFETIME_SECS: "600",
  });

  test("expiring fires before the idle end, extend() prevents expiry, doing nothing ends it", async () => {
    const page = await f.page(await f.device(), { expiringLeadSeconds: 3 });
    const session = await login(page);
    const warning = await eventually(async () => (await events(page, "expiring"))[0], 9_000, "expiring");
    assert.equal(warning.detail.reason, "idle");
    assert.ok(warning.detail.secondsLeft <= 3 && warning.detail.secondsLeft >= 1);
    assert.ok(warning.at < session.idleExpiresAt);

    const extended = await page.evaluate(() => kb.extend());
    assert.ok(extended.idleExpiresAt > session.idleExpiresAt);
    await sleep(Math.max(0, session.idleExpiresAt - Date.now() + 1_000));
    assert.equal(await state(page), "active");
    assert.equal((await me(page)).status, 200);

    // Now leave it alone: warned again, then expired at the new idle end.
    await eventually(async () => (await state(page)) === "expired", 20_000, "expired");
    assert.equal((await events(page, "expired")).length, 1);
    assert.equal((await events(page, "expired"))[0].detail.reason, "idle");
    assert.ok((await events(page, "expiring")).length >= 2);
    const refused = await page.evaluate(() => attempt(() => kb.fetch("/api/me")));
    assert.equal(refused.code, "session_expired");
  });
});

describe("an unreachable server", { skip }, () => {
  const f = fixture({
    KEYBOUND_ACCESS_TTL_SECS: "4",
    KEYBOUND_REFRESH_GRACE_SECS: "2",
    KEYBOUND_IDLE_TIMEOUT_SECS: "120",
  });

  test("failed refreshes retry with backoff and keep the session until the server is back", async () => {
    const context = await f.device();
    const page = await f.page(context);
    await login(page);
    const refreshUrl = `${f.server.origin}/session/refresh`;
    const down = (route) => route.abort("connectionrefused");
    await context.route(refreshUrl, down);
    const touching = setInterval(() => page.evaluate(() => kb.touch()).catch(() => {}), 300);
    try {
      const failure = await eventually(async () => (await events(page, "error"))[0], 8_000, "a failed refresh");
      assert.equal(failure.detail.code, "network_error");
      assert.equal(await state(page), "active");
      // Past the access token's end, a request that needs a refresh fails softly.
      await sleep(3_000);
      const offline = await page.evaluate(() => attempt(() => kb.fetch("/api/me")));
      assert.equal(offline.code, "network_error");
      assert.equal(await state(page), "active");

      await context.unroute(refreshUrl, down);
      await eventually(async () => (await events(page, "refreshed")).length >= 1, 20_000, "a refresh after recovery");
    } finally {
      clearInterval(touching);
    }
    assert.equal((await me(page)).status, 200);
    assert.equal(await state(page), "active");
  });
});

describe("a wrong browser clock", { skip }, () => {
  const f = fixture({});

  test("ten minutes behind: one retry with the server's time (Date), then proofs and deadlines use it", async () => {
    const context = await f.device();
    await context.clock.install({ time: Date.now() - 10 * 60_000 });
    const logins = countRequests(context, "/api/login");
    const page = await f.page(context);
    const session = await login(page);
    assert.equal(logins.POST, 2, "refused for iat, then accepted");
    assert.equal((await me(page)).status, 200);
    // Deadlines come back on the browser's own clock, so countdowns still work.
    const local = await page.evaluate(() => Date.now());
    const left = session.accessTokenExpiresAt - local;
    assert.ok(left > 0 && left <= 301_000, `access token ends in ${left} ms`);
  });
});
