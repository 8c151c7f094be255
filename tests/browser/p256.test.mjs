// A browser without WebCrypto Ed25519 (Chrome before 137, Firefox before 129, Safari
// before 17: `generateKey` and `importKey` refuse it with NotSupportedError), played by
// headless Chromium with those two calls patched. The SDK makes a non-extractable
// WebCrypto ECDSA P-256 key and signs ES256 proofs; a whole session works against the
// real server, which here accepts ES256 only (KEYBOUND_PROOF_ALGS=ES256), so every
// answer it gives a signed request is an ES256 proof it verified. The fallback signer
// (the in-module Ed25519 key) is never fetched.
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
  withoutEd25519,
} from "./lib/harness.mjs";

const haveServer = sdkBuilt && (await serverAvailable());
const skip = !sdkBuilt ? SDK_MISSING : !haveServer && "examples/minimal is not available yet";
const ALICE = JSON.stringify({ username: "alice", password: "wonderland" });
const STORAGE = "p256";

const login = (page) => page.evaluate((body) => kb.login("/api/login", { body }), ALICE);
const me = (page) =>
  page.evaluate(async () => {
    const res = await kb.fetch("/api/me");
    return { status: res.status, body: res.status === 200 ? await res.json() : await res.text() };
  });
const events = (page, type) => page.evaluate((type) => window.events.filter((e) => e.type === type), type);
const startIn = (page, options = {}) => page.evaluate((o) => start(o), { storageName: STORAGE, ...options });

describe("a browser without WebCrypto Ed25519", { skip }, () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({
      KEYBOUND_PROOF_ALGS: "ES256",
      KEYBOUND_ACCESS_TTL_SECS: "6",
      KEYBOUND_REFRESH_GRACE_SECS: "3",
      KEYBOUND_IDLE_TIMEOUT_SECS: "120",
    });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A device (browser profile) without Ed25519, recording what its pages fetch and sign. */
  async function device() {
    const context = await browser.newContext();
    await serveFiles(context, server.origin);
    await context.addInitScript(withoutEd25519);
    // Every path fetched; every signed request's proof with the status of its answer.
    const seen = { paths: [], signed: [] };
    context.on("request", (request) => seen.paths.push(new URL(request.url()).pathname));
    context.on("response", async (response) => {
      const proof = await response.request().headerValue("dpop");
      if (proof) seen.signed.push({ proof, status: response.status() });
    });
    return { context, seen };
  }

  test("signs in, fetches, refreshes once across two tabs, reloads and logs out with a P-256 key", async () => {
    const { context, seen } = await device();
    const refreshes = countRequests(context, "/session/refresh");
    const a = await openApp(context, server.origin);

    // The patch behaves as such a browser does.
    const refused = await a.evaluate(() =>
      crypto.subtle.generateKey("Ed25519", false, ["sign"]).then(
        () => "made",
        (e) => e.name,
      ),
    );
    assert.equal(refused, "NotSupportedError");

    const started = await startIn(a);
    assert.equal(started.keyKind, "webcrypto-p256");
    const key = await a.evaluate((name) => describeDeviceKey(name), STORAGE);
    assert.equal(key.kind, "webcrypto-p256");
    assert.equal(key.algorithm, "ECDSA");
    assert.equal(key.namedCurve, "P-256");
    assert.equal(key.extractable, false);
    assert.equal(key.exportable, false);
    assert.deepEqual(key.usages, ["sign"]);
    assert.deepEqual(key.fields, ["kind", "privateKey", "x"]);

    const session = await login(a);
    assert.equal(await a.evaluate(() => kb.state), "active");

    // A second tab of the same browser takes up the session and the same key.
    const b = await openApp(context, server.origin);
    const second = await startIn(b);
    assert.equal(second.state, "active");
    assert.equal(second.keyKind, "webcrypto-p256");
    assert.equal(second.thumbprint, started.thumbprint);

    // Both tabs in use once the access token is due (the last quarter of its life):
    // one refresh, both keep working.
    await sleep(Math.max(0, session.accessTokenExpiresAt - Date.now() - 1_000));
    const both = await Promise.all([me(a), me(b)]);
    for (const r of both) {
      assert.equal(r.status, 200);
      assert.equal(r.body.user, "alice");
      assert.equal(r.body.session_id, session.id);
    }
    assert.equal(refreshes.POST, 1);
    const infos = await Promise.all([a, b].map((tab) => tab.evaluate(() => kb.session)));
    assert.equal(infos[0].id, session.id);
    assert.equal(infos[1].accessTokenExpiresAt, infos[0].accessTokenExpiresAt);
    assert.ok(infos[0].accessTokenExpiresAt > session.accessTokenExpiresAt);

    // A reload resumes the session with the stored P-256 key.
    await a.reload();
    await a.waitForFunction(() => window.ready === true);
    const resumed = await startIn(a);
    assert.equal(resumed.state, "active");
    assert.equal(resumed.keyKind, "webcrypto-p256");
    assert.equal(resumed.thumbprint, started.thumbprint);
    assert.equal((await me(a)).status, 200);

    // Every request carried an ES256 proof by that key, which the server accepted:
    // login, three resource requests, one refresh.
    await eventually(() => seen.signed.length >= 5, 2_000, "five signed requests");
    for (const { proof, status } of seen.signed) {
      assert.equal(status, 200);
      const inspected = await a.evaluate((p) => inspectProof(p), proof);
      assert.equal(inspected.header.alg, "ES256");
      assert.deepEqual(Object.keys(inspected.header.jwk).sort(), ["crv", "kty", "x", "y"]);
      assert.equal(inspected.header.jwk.crv, "P-256");
      assert.equal(inspected.valid, true);
      assert.equal(inspected.jkt, started.thumbprint);
    }

    await a.evaluate(() => kb.logout());
    assert.equal(await a.evaluate(() => kb.state), "closed");
    await eventually(async () => (await b.evaluate(() => kb.state)) === "closed", 5_000, "closed in the other tab");
    assert.equal(await a.evaluate((name) => describeDeviceKey(name), STORAGE), null);
    assert.equal((await events(a, "error")).length, 0);
    assert.equal((await events(b, "error")).length, 0);

    assert.deepEqual(
      seen.paths.filter((p) => p.includes("fallback")),
      [],
    );
    await context.close();
  });

  test("a browser that gains Ed25519 keeps its P-256 key until logout", async () => {
    const { context, seen } = await device();
    const page = await openApp(context, server.origin);
    const before = await startIn(page);
    assert.equal(before.keyKind, "webcrypto-p256");
    await login(page);

    await page.evaluate(() => localStorage.setItem("has-ed25519", "yes"));
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const updated = await startIn(page);
    assert.equal(updated.state, "active");
    assert.equal(updated.keyKind, "webcrypto-p256");
    assert.equal(updated.thumbprint, before.thumbprint);
    assert.equal((await me(page)).status, 200);

    // After logout the next key is the preferred kind.
    await page.evaluate(() => kb.logout());
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const fresh = await startIn(page);
    assert.equal(fresh.keyKind, "webcrypto");
    assert.notEqual(fresh.thumbprint, before.thumbprint);
    // This server takes ES256 only: the new Ed25519 key's login is refused.
    const refused = await page.evaluate((body) => attempt(() => kb.login("/api/login", { body })), ALICE);
    assert.equal(refused.ok, false);
    assert.equal(refused.status, 401);
    assert.deepEqual(
      seen.paths.filter((p) => p.includes("fallback")),
      [],
    );
    await context.close();
  });

  test("the in-module signer is used only when asked for (forceWasmKeys), and then fetched", async () => {
    const { context, seen } = await device();
    const page = await openApp(context, server.origin);
    const started = await startIn(page, { storageName: "p256-forced", forceWasmKeys: true });
    assert.equal(started.keyKind, "wasm");
    // (Its signatures are checked elsewhere: this page's WebCrypto cannot import Ed25519.)
    const header = await page.evaluate(async () => {
      const proof = await kb.createProof("GET", location.href);
      return JSON.parse(new TextDecoder().decode(b64urlDecode(proof.split(".")[0])));
    });
    assert.equal(header.alg, "EdDSA");
    assert.equal(header.jwk.crv, "Ed25519");
    assert.ok(seen.paths.includes("/__kb/pkg/keybound_fallback_bg.wasm"), seen.paths.join(" "));
    await context.close();
  });
});
