// Issue 14's SDK items against the real server (examples/minimal), in headless
// Chromium: credentials only for allowed origins and no session change from a foreign
// answer (a second and a third origin are Node servers of this test), `429` as
// `rate_limited` with its Retry-After, and the session list in pages.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import {
  SDK_MISSING,
  eventually,
  launch,
  openApp,
  sdkBuilt,
  serveFiles,
  serverAvailable,
  startServer,
} from "./lib/harness.mjs";

const haveServer = sdkBuilt && (await serverAvailable());
const skip = !sdkBuilt ? SDK_MISSING : !haveServer && "examples/minimal is not available yet";
const ALICE = JSON.stringify({ username: "alice", password: "wonderland" });
const BOB = JSON.stringify({ username: "bob", password: "builder" });

/**
 * A Node server on its own loopback port (its own origin) that records every request
 * and answers with `answer(req, res)`; CORS lets the page read its answers.
 */
async function otherOrigin(answer) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers });
    res.setHeader("access-control-allow-origin", req.headers.origin ?? "*");
    res.setHeader("access-control-allow-headers", "authorization, dpop, content-type");
    res.setHeader("access-control-expose-headers", "dpop-nonce, www-authenticate");
    if (req.method === "OPTIONS") {
      res.writeHead(204).end();
      return;
    }
    answer(req, res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    seen,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The answer a keybound server gives for a revoked session. */
function revoked(req, res) {
  res.writeHead(401, {
    "content-type": "application/json",
    "www-authenticate": 'DPoP error="invalid_token", algs="EdDSA ES256"',
    "dpop-nonce": "foreign-nonce",
  });
  res.end(JSON.stringify({ error: "invalid_token", error_code: "session_revoked", error_description: "revoked" }));
}

describe("abuse resistance of the SDK", { skip }, () => {
  let server;
  let browser;
  let foreign;
  let redirector;
  const contexts = [];
  before(async () => {
    server = await startServer({ KEYBOUND_LOGIN_PER_USER_PER_MIN: "0" });
    // The test page comes from Playwright's request interception, which Chromium's
    // Local Network Access counts as outside the loopback space: it would refuse the
    // page's requests to the other loopback origins below before they are sent.
    browser = await launch(["--disable-features=LocalNetworkAccessChecks"]);
    foreign = await otherOrigin(revoked);
    // An origin the app allows that sends its callers on to the foreign one.
    redirector = await otherOrigin((req, res) => res.writeHead(307, { location: `${foreign.origin}/api` }).end());
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await foreign?.close();
    await redirector?.close();
  });

  async function device() {
    const context = await browser.newContext();
    await serveFiles(context, server.origin);
    contexts.push(context);
    return context;
  }

  async function page(context, options = {}) {
    const p = await openApp(context, server.origin);
    await p.evaluate((o) => start(o), { storageName: "abuse", ...options });
    return p;
  }

  const me = (p) => p.evaluate(async () => (await kb.fetch("/api/me")).status);

  test("no token or proof leaves for an origin not allowed; its session_revoked ends nothing, in any tab", async () => {
    const context = await device();
    const options = { allowedOrigins: [redirector.origin] };
    const tab = await page(context, options);
    const other = await page(context, options);
    await tab.evaluate((body) => kb.login("/api/login", { body }), ALICE);
    await eventually(async () => (await other.evaluate(() => kb.state)) === "active", 5_000, "the other tab's login");

    // Straight to the foreign origin: refused before anything is sent.
    const direct = await tab.evaluate((url) => attempt(() => kb.fetch(url)), `${foreign.origin}/api`);
    assert.equal(direct.ok, false);
    assert.equal(direct.code, "origin_not_allowed");
    assert.equal(direct.isKeyboundError, true);
    const others = await tab.evaluate(
      (url) =>
        Promise.all([
          attempt(() => kb.login(url, { body: "{}" })),
          attempt(() => kb.rotate(url, { body: "{}" })),
          attempt(() => kb.createProof("GET", url)),
        ]),
      `${foreign.origin}/api`,
    );
    assert.deepEqual(
      others.map((r) => r.code),
      ["origin_not_allowed", "origin_not_allowed", "origin_not_allowed"],
    );
    assert.equal(foreign.seen.length, 0, "the foreign origin heard nothing");

    // Through an allowed origin that redirects there: the foreign answer (401
    // session_revoked) reaches the caller and changes nothing.
    const redirected = await tab.evaluate(async (url) => {
      const res = await kb.fetch(url);
      return { status: res.status, url: res.url, body: await res.json() };
    }, `${redirector.origin}/api`);
    assert.equal(redirected.status, 401);
    assert.equal(redirected.url, `${foreign.origin}/api`);
    assert.equal(redirected.body.error_code, "session_revoked");
    assert.equal(redirector.seen.filter((r) => r.method === "GET").length, 1);
    const landed = foreign.seen.filter((r) => r.method === "GET");
    assert.equal(landed.length, 1);
    assert.equal(landed[0].headers.authorization, undefined, "the browser dropped the token");

    for (const p of [tab, other]) {
      assert.equal(await p.evaluate(() => kb.state), "active");
      assert.equal((await p.evaluate(() => window.events.filter((e) => e.type === "revoked"))).length, 0);
      assert.equal(await me(p), 200);
    }
  });

  test("an origin the app allows gets the token and a proof, and its answers count", async () => {
    const context = await device();
    const tab = await page(context, { allowedOrigins: [foreign.origin] });
    await tab.evaluate((body) => kb.login("/api/login", { body }), ALICE);
    const before = foreign.seen.length;
    const status = await tab.evaluate(async (url) => (await kb.fetch(url)).status, `${foreign.origin}/api`);
    assert.equal(status, 401);
    const sent = foreign.seen.slice(before).find((r) => r.method === "GET");
    assert.match(sent.headers.authorization, /^DPoP /);
    assert.ok(sent.headers.dpop);
    assert.equal(await tab.evaluate(() => kb.state), "revoked");
  });

  test("allowedOrigins takes origins only", async () => {
    const context = await device();
    const p = await openApp(context, server.origin);
    const results = await p.evaluate(() =>
      Promise.all([
        attempt(() => Keybound.init({ allowedOrigins: ["https://api.example/v1"] })),
        attempt(() => Keybound.init({ allowedOrigins: ["api.example"] })),
        attempt(() => Keybound.init({ allowedOrigins: "https://api.example" })),
        attempt(() => Keybound.init({ allowedOrigins: [42] })),
      ]),
    );
    for (const r of results) assert.equal(r.code, "invalid_option", r.message);
  });

  test("a login over the rate limit is rate_limited with retryAfter; a 429 refresh keeps the session", async () => {
    const limited = await startServer({ KEYBOUND_LOGIN_PER_IP_PER_MIN: "2" });
    try {
      const context = await browser.newContext();
      contexts.push(context);
      await serveFiles(context, limited.origin);
      const tab = await openApp(context, limited.origin);
      await tab.evaluate(() => start({ storageName: "limited" }));
      await tab.evaluate((body) => kb.login("/api/login", { body }), ALICE);
      const wrong = JSON.stringify({ username: "alice", password: "nope" });
      const refused = await tab.evaluate((body) => attempt(() => kb.login("/api/login", { body })), wrong);
      assert.equal(refused.code, "invalid_credentials");
      const over = await tab.evaluate((body) => attempt(() => kb.login("/api/login", { body })), ALICE);
      assert.equal(over.ok, false);
      assert.equal(over.code, "rate_limited");
      assert.equal(over.status, 429);
      assert.equal(over.isKeyboundError, true);
      assert.ok(Number.isInteger(over.retryAfter) && over.retryAfter >= 1 && over.retryAfter <= 60, `${over.retryAfter}`);
      assert.equal(await tab.evaluate(() => kb.state), "active", "the session from before stays");

      // A refresh answered 429 (a proxy's limit, say, without a JSON body).
      await context.route(`${limited.origin}/session/refresh`, (route) =>
        route.fulfill({ status: 429, headers: { "retry-after": "120", "content-type": "text/plain" }, body: "slow down" }),
      );
      const extended = await tab.evaluate(() => attempt(() => kb.extend()));
      assert.equal(extended.code, "rate_limited");
      assert.equal(extended.status, 429);
      assert.equal(extended.retryAfter, 120);
      assert.equal(await tab.evaluate(() => kb.state), "active");
      assert.equal(await me(tab), 200);
    } finally {
      await limited.stop();
    }
  });

  test("the session list comes in pages that hold every session once", async () => {
    const context = await device();
    const tab = await page(context, { storageName: "pages" });
    {
      const ids = [];
      for (let i = 0; i < 5; i++) {
        ids.push((await tab.evaluate((body) => kb.login("/api/login", { body }), BOB)).id);
      }
      const pages = await tab.evaluate(async () => {
        const out = [];
        let page = await kb.sessionPage({ limit: 2 });
        out.push(page);
        while (page.nextCursor) {
          page = await kb.sessionPage({ limit: 2, cursor: page.nextCursor });
          out.push(page);
        }
        return out.map((p) => ({ ids: p.sessions.map((s) => s.id), next: p.nextCursor }));
      });
      assert.deepEqual(pages.map((p) => p.ids.length), [2, 2, 1]);
      assert.equal(pages.at(-1).next, null);
      const listed = pages.flatMap((p) => p.ids);
      assert.deepEqual([...listed].sort(), [...ids].sort(), "each session once");
      // Newest first (logins within one second are ordered by id).
      const created = await tab.evaluate(async () =>
        Object.fromEntries((await kb.sessions()).map((s) => [s.id, s.createdAt.getTime()])),
      );
      const order = [...ids].sort((a, b) => created[b] - created[a] || (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(listed, order);
      const all = await tab.evaluate(async () => (await kb.sessions()).map((s) => s.id));
      assert.deepEqual(all, listed);

      const bad = await tab.evaluate(() =>
        Promise.all([
          attempt(() => kb.sessionPage({ limit: 0 })),
          attempt(() => kb.sessionPage({ limit: 201 })),
          attempt(() => kb.sessionPage({ cursor: "bogus" })),
        ]),
      );
      assert.deepEqual(
        bad.map((r) => [r.code, r.status]),
        [
          ["invalid_page_limit", 400],
          ["invalid_page_limit", 400],
          ["invalid_cursor", 400],
        ],
      );
      assert.equal(await tab.evaluate(() => kb.state), "active");
    }
  });
});
