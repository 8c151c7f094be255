// The package in a plain <script type="module"> page, without a server: key store,
// proofs (checked with WebCrypto, independently of the SDK), errors.
import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { SDK_MISSING, launch, openApp, sdkBuilt, serveFiles } from "./lib/harness.mjs";

// Nothing listens here: Playwright answers the page's own files, anything else fails.
const ORIGIN = "http://localhost:47813";

describe("the package in a plain module page", { skip: !sdkBuilt && SDK_MISSING }, () => {
  let browser;
  let context;
  let page;

  before(async () => {
    browser = await launch();
  });
  after(() => browser?.close());
  beforeEach(async () => {
    context = await browser.newContext();
    await serveFiles(context, ORIGIN);
    page = await openApp(context, ORIGIN);
  });
  afterEach(() => context.close());

  test("creates a non-extractable WebCrypto key whose proofs WebCrypto verifies", async () => {
    // createProof signs only for allowed origins.
    const started = await page.evaluate(() => start({ storageName: "plain", allowedOrigins: ["https://api.example"] }));
    assert.equal(started.state, "anonymous");
    assert.equal(started.keyKind, "webcrypto");
    assert.match(started.thumbprint, /^[A-Za-z0-9_-]{43}$/);

    const result = await page.evaluate(async () => {
      const proof = await kb.createProof("POST", "https://api.example/orders?x=1#frag", {
        accessToken: "at-123",
        nonce: "n-1",
      });
      return { ...(await inspectProof(proof)), ath: await accessTokenHash("at-123") };
    });
    assert.equal(result.valid, true);
    assert.deepEqual(Object.keys(result.header).sort(), ["alg", "jwk", "typ"]);
    assert.equal(result.header.typ, "dpop+jwt");
    assert.equal(result.header.alg, "EdDSA");
    assert.deepEqual(Object.keys(result.header.jwk).sort(), ["crv", "kty", "x"]);
    assert.equal(result.jkt, started.thumbprint);
    assert.equal(result.claims.htm, "POST");
    assert.equal(result.claims.htu, "https://api.example/orders");
    assert.equal(result.claims.ath, result.ath);
    assert.equal(result.claims.nonce, "n-1");
    assert.ok(result.claims.jti.length >= 22);
    assert.ok(Math.abs(result.claims.iat - Date.now() / 1000) < 5);

    const key = await page.evaluate(() => describeDeviceKey("plain"));
    assert.equal(key.kind, "webcrypto");
    assert.equal(key.algorithm, "Ed25519");
    assert.equal(key.extractable, false);
    assert.equal(key.exportable, false);
    assert.deepEqual(key.fields, ["kind", "privateKey", "x"]);
  });

  test("the wasm key fallback makes proofs WebCrypto verifies", async () => {
    const started = await page.evaluate(() => start({ storageName: "fallback", forceWasmKeys: true }));
    assert.equal(started.keyKind, "wasm");
    const result = await page.evaluate(async () =>
      inspectProof(await kb.createProof("GET", "http://localhost:47813/api/me")),
    );
    assert.equal(result.valid, true);
    assert.equal(result.jkt, started.thumbprint);
    assert.equal(result.claims.ath, undefined);
    const key = await page.evaluate(() => describeDeviceKey("fallback"));
    assert.deepEqual(key.fields, ["kind", "sealed", "x"]);
  });

  /** The paths `context` requested while `run` ran, from page start. */
  async function recordRequests(run) {
    const recorded = await browser.newContext();
    await serveFiles(recorded, ORIGIN);
    const paths = [];
    recorded.on("request", (request) => paths.push(new URL(request.url()).pathname));
    try {
      const fresh = await openApp(recorded, ORIGIN);
      await run(fresh);
      await fresh.reload();
      await fresh.waitForFunction(() => window.ready === true);
      await run(fresh);
    } finally {
      await recorded.close();
    }
    return paths;
  }

  test("Chromium (WebCrypto Ed25519) never fetches the fallback signer", async () => {
    const paths = await recordRequests(async (p) => {
      const started = await p.evaluate(() => start({ storageName: "no-fallback" }));
      assert.equal(started.keyKind, "webcrypto");
      assert.equal((await p.evaluate(async () => inspectProof(await kb.createProof("GET", location.href)))).valid, true);
    });
    assert.ok(paths.includes("/__kb/pkg/keybound_client_bg.wasm"), paths.join(" "));
    assert.deepEqual(
      paths.filter((p) => p.includes("fallback")),
      [],
    );
  });

  test("with forceWasmKeys the fallback signer is fetched, and signs", async () => {
    const paths = await recordRequests(async (p) => {
      const started = await p.evaluate(() => start({ storageName: "with-fallback", forceWasmKeys: true }));
      assert.equal(started.keyKind, "wasm");
      assert.equal((await p.evaluate(async () => inspectProof(await kb.createProof("GET", location.href)))).valid, true);
    });
    const fallback = paths.filter((p) => p.includes("fallback"));
    assert.ok(fallback.some((p) => /\/__kb\/pkg\/keybound_fallback-[\w-]+\.js$/.test(p)), fallback.join(" "));
    assert.ok(fallback.includes("/__kb/pkg/keybound_fallback_bg.wasm"), fallback.join(" "));
  });

  test("without IndexedDB (indexedDB.open throws) the key and session live in memory", async () => {
    const bare = await browser.newContext();
    await serveFiles(bare, ORIGIN);
    await bare.addInitScript(() => {
      IDBFactory.prototype.open = () => {
        throw new DOMException("The operation is insecure.", "SecurityError");
      };
    });
    try {
      const p = await openApp(bare, ORIGIN);
      const started = await p.evaluate(() => start({ storageName: "memory" }));
      assert.equal(started.state, "anonymous");
      assert.equal(started.keyKind, "webcrypto");
      assert.equal(await p.evaluate(() => kb.persistent), false);
      const proof = await p.evaluate(async () => inspectProof(await kb.createProof("GET", location.href)));
      assert.equal(proof.valid, true);
      assert.equal(proof.jkt, started.thumbprint);
      // Module keys work too: their seed is sealed in memory under a non-extractable key.
      const wasm = await p.evaluate(() => start({ storageName: "memory-wasm", forceWasmKeys: true }));
      assert.equal(wasm.keyKind, "wasm");
      assert.equal((await p.evaluate(async () => inspectProof(await kb.createProof("GET", location.href)))).valid, true);
    } finally {
      await bare.close();
    }
    assert.equal(await page.evaluate(async () => (await start({ storageName: "disk" }), kb.persistent)), true);
  });

  test("the key survives a reload", async () => {
    const first = await page.evaluate(() => start({ storageName: "reload" }));
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const second = await page.evaluate(() => start({ storageName: "reload" }));
    assert.equal(second.thumbprint, first.thumbprint);
    assert.equal(second.keyKind, "webcrypto");
    const proof = await page.evaluate(async () => inspectProof(await kb.createProof("GET", location.href)));
    assert.equal(proof.valid, true);
    assert.equal(proof.jkt, first.thumbprint);
  });

  test("storage names keep keys apart", async () => {
    const a = await page.evaluate(() => start({ storageName: "app-a" }));
    const b = await page.evaluate(() => start({ storageName: "app-b" }));
    assert.notEqual(a.thumbprint, b.thumbprint);
  });

  // A first visit makes its key while the module compiles: once only, and the one stored.
  test("after logout the next proof is made with a new key, stored in place of the first", async () => {
    const first = await page.evaluate(() => start({ storageName: "once" }));
    const again = await page.evaluate(async () => {
      await kb.logout();
      const gone = await describeDeviceKey("once");
      const proof = await inspectProof(await kb.createProof("GET", location.href));
      return { gone, jkt: proof.jkt, thumbprint: kb.thumbprint, stored: await describeDeviceKey("once") };
    });
    assert.equal(again.gone, null);
    assert.notEqual(again.thumbprint, first.thumbprint);
    assert.equal(again.jkt, again.thumbprint);
    assert.equal(again.stored.kind, "webcrypto");
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const reloaded = await page.evaluate(() => start({ storageName: "once" }));
    assert.equal(reloaded.thumbprint, again.thumbprint);
  });

  test("tabs starting at once on a new device end up with one key, the stored one", async () => {
    const other = await openApp(context, ORIGIN);
    const started = await Promise.all(
      [page, other, page, other].map((p) => p.evaluate(() => Keybound.init({ storageName: "race" }).then((k) => k.thumbprint))),
    );
    assert.equal(new Set(started).size, 1, started.join(" "));
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    assert.equal((await page.evaluate(() => start({ storageName: "race" }))).thumbprint, started[0]);
  });

  test("requests without a session fail with stable codes", async () => {
    await page.evaluate(() => start({ storageName: "nosession" }));
    const results = await page.evaluate(async () => ({
      fetch: await attempt(() => kb.fetch("/api/me")),
      extend: await attempt(() => kb.extend()),
      sessions: await attempt(() => kb.sessions()),
      logout: await attempt(() => kb.logout()),
    }));
    for (const name of ["fetch", "extend", "sessions"]) {
      assert.equal(results[name].ok, false, name);
      assert.equal(results[name].code, "not_logged_in", name);
      assert.equal(results[name].name, "KeyboundError", name);
      assert.equal(results[name].isKeyboundError, true, name);
    }
    // Logging out without a session still forgets the key.
    assert.equal(results.logout.ok, true);
    assert.equal(await page.evaluate(() => kb.thumbprint), null);
    assert.equal(await page.evaluate(() => describeDeviceKey("nosession")), null);
    const disposed = await page.evaluate(() => {
      kb.dispose();
      return attempt(() => kb.createProof("GET", location.href));
    });
    assert.equal(disposed.code, "disposed");
  });

  test("an unreachable login route gives network_error and leaves the state alone", async () => {
    await page.evaluate(() => start({ storageName: "offline" }));
    const result = await page.evaluate(() =>
      attempt(() => kb.login("/api/login", { body: JSON.stringify({ username: "alice", password: "x" }) })),
    );
    assert.equal(result.ok, false);
    assert.equal(result.code, "network_error");
    assert.equal(await page.evaluate(() => kb.state), "anonymous");
  });

  test("a refused login gives the server's code and status", async () => {
    await context.route(`${ORIGIN}/api/login`, (route) =>
      route.fulfill({
        status: 401,
        contentType: "application/json",
        body: JSON.stringify({ error: "invalid_credentials", error_description: "wrong password" }),
      }),
    );
    await page.evaluate(() => start({ storageName: "refused" }));
    const seen = [];
    page.on("request", (request) => {
      if (request.url().endsWith("/api/login")) seen.push(request);
    });
    const result = await page.evaluate(() =>
      attempt(() => kb.login("/api/login", { body: JSON.stringify({ username: "alice", password: "x" }) })),
    );
    assert.equal(result.code, "invalid_credentials");
    assert.equal(result.status, 401);
    assert.equal(seen.length, 1);
    const request = seen[0];
    assert.equal(request.method(), "POST");
    const headers = await request.allHeaders();
    assert.equal(headers["content-type"], "application/json");
    assert.equal(headers.authorization, undefined);
    const proof = await page.evaluate((p) => inspectProof(p), headers.dpop);
    assert.equal(proof.valid, true);
    assert.equal(proof.claims.htm, "POST");
    assert.equal(proof.claims.htu, `${ORIGIN}/api/login`);
    assert.equal(proof.claims.ath, undefined);
  });

  test("invalid options are refused with invalid_option", async () => {
    const results = await page.evaluate(async () => [
      await attempt(() => Keybound.init({ expiringLeadSeconds: -5 })),
      await attempt(() => Keybound.init({ storageName: 42 })),
      await attempt(() => Keybound.init({ endpoint: "ftp://x/session" })),
      await attempt(() => Keybound.init("nope")),
      await attempt(() => Keybound.init({ endPoint: "/session" })),
    ]);
    for (const r of results) {
      assert.equal(r.ok, false);
      assert.equal(r.code, "invalid_option", r.message);
    }
  });
});
