// End to end: the demo server and web app in headless Chromium. Two browser contexts
// are two devices of the same user. `scripts/demo.sh --build-only` builds what changed
// first (the SDK, the web app, the server), so a fresh checkout needs no other step.
// Screenshots go to examples/demo/test/output/ (not committed).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { OUTPUT, ROOT, buildDemo, launch, sleep, startDemo } from "./harness.mjs";

/**
 * A device: a browser context of its own (its own IndexedDB, so its own device key)
 * with the demo open. Page errors are collected in `page.errors`.
 */
async function openDevice(browser, origin) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(error));
  await page.goto(`${origin}/`);
  await page.waitForSelector("[data-testid=signin], [data-testid=session-panel]");
  return page;
}

/** Signs in on the sign-in page and waits for the dashboard. */
async function signIn(page, username, password) {
  await page.fill("[data-testid=signin-username]", username);
  await page.fill("[data-testid=signin-password]", password);
  await page.click("[data-testid=signin-submit]");
  await page.waitForSelector("[data-testid=device][data-current=true]");
}

/** Records the SDK's session events in `window.sdkEvents` (with their time). */
async function recordEvents(page) {
  await page.evaluate(() => {
    window.sdkEvents = [];
    for (const type of ["login", "refreshed", "expiring", "expired", "revoked", "closed"]) {
      window.kb.addEventListener(type, () => window.sdkEvents.push({ type, at: Date.now() }));
    }
  });
}

const sdkEvents = (page) => page.evaluate(() => window.sdkEvents.map((e) => e.type));
const state = (page) => page.evaluate(() => window.kb.state);
const text = (page, testid) => page.textContent(`[data-testid=${testid}]`);

// ---- the tests ---------------------------------------------------------------------

const bin = await buildDemo();

/** A demo server with `env` (in memory) and a browser, for one group of tests. */
function fixture(env) {
  const f = { server: null, browser: null, pages: [] };
  before(async () => {
    f.server = await startDemo(bin, ["--store", "memory"], env);
    f.browser = await launch();
  });
  after(async () => {
    for (const page of f.pages) assert.deepEqual(page.errors, [], "no page errors");
    await f.browser?.close();
    await f.server?.stop();
  });
  f.device = async () => {
    const page = await openDevice(f.browser, f.server.origin);
    f.pages.push(page);
    return page;
  };
  return f;
}

async function assertPng(file) {
  const bytes = await readFile(file);
  assert.ok(bytes.length > 10_000, `${file} is ${bytes.length} bytes`);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${file} is a PNG`);
}

const activeDevices = (page) => page.locator("[data-testid=device][data-state=active]");

describe("two devices of one user", { timeout: 180_000 }, () => {
  const f = fixture({ KEYBOUND_ACCESS_TTL_SECS: "60", KEYBOUND_IDLE_TIMEOUT_SECS: "600" });
  let a;
  let b;

  test("both sign in; B sees both sessions, revokes A; A is told within 2 s and signs in again", async () => {
    a = await f.device();
    b = await f.device();
    await signIn(a, "alice", "wonderland");
    await signIn(b, "alice", "wonderland");
    await b.click("[data-testid=reload-devices]");
    await b.waitForFunction(() => document.querySelectorAll("[data-testid=device][data-state=active]").length === 2);
    assert.equal(await b.locator("[data-testid=device][data-current=true]").count(), 1);
    assert.equal(await b.locator("[data-testid=this-device]").count(), 1);
    assert.equal(await state(b), "active");

    // The dashboard and the devices list, as screenshots.
    await b.waitForSelector("[data-testid=orders] table");
    await sleep(300);
    const dashboard = path.join(OUTPUT, "dashboard.png");
    const devices = path.join(OUTPUT, "devices.png");
    await b.screenshot({ path: dashboard, fullPage: true });
    await b.locator("[data-testid=devices]").screenshot({ path: devices });
    await assertPng(dashboard);
    await assertPng(devices);

    const aSession = await a.evaluate(() => kb.session.id);
    await recordEvents(a);
    await a.fill("[data-testid=note-input]", "remember the tea party");

    const row = b.locator(`[data-testid=device][data-session="${aSession}"]`);
    await row.locator("[data-testid=revoke]").click();
    const revokedAt = Date.now();
    // A's next call fails: the server refuses the revoked session (or the SDK already
    // knows from the audit stream and refuses locally).
    const next = await a.evaluate(() =>
      kb.fetch("/api/orders").then(
        (res) => res.status,
        (error) => error.code,
      ),
    );
    assert.ok([401, "session_revoked"].includes(next), `A's call after revocation gave ${next}`);
    await a.waitForSelector("[data-testid=modal-ended]", { timeout: 2000 });
    assert.ok(Date.now() - revokedAt <= 2000, "A's UI says so within 2 s");
    assert.equal(await text(a, "ended-title"), "This session was revoked");
    assert.match(await text(a, "ended-reason"), /another of your devices/);
    assert.equal(await state(a), "revoked");
    assert.ok((await sdkEvents(a)).includes("revoked"), "the SDK's revoked event fired");
    assert.equal(await text(a, "state-badge"), "revoked");
    await sleep(300);
    await a.screenshot({ path: path.join(OUTPUT, "session-revoked.png") });

    // A signs in again from the prompt; what A typed is still there.
    assert.equal(await a.inputValue("[data-testid=reauth-username]"), "alice");
    await a.fill("[data-testid=reauth-password]", "wonderland");
    await a.click("[data-testid=reauth-submit]");
    await a.waitForSelector("[data-testid=modal-ended]", { state: "detached" });
    assert.equal(await state(a), "active");
    assert.notEqual(await a.evaluate(() => kb.session.id), aSession);
    assert.equal(await a.inputValue("[data-testid=note-input]"), "remember the tea party");
    await a.click("[data-testid=save-note]");
    await a.waitForSelector("[data-testid=note-list] >> text=remember the tea party");

    // B sees the old session revoked and the new one active.
    await b.click("[data-testid=reload-devices]");
    await b.waitForFunction(
      (old) => document.querySelector(`[data-testid=device][data-session="${old}"]`)?.dataset.state === "revoked",
      aSession,
    );
    assert.equal(await activeDevices(b).count(), 2);
  });

  test("a password change on A rotates A's tokens and revokes B", async () => {
    await recordEvents(b);
    const before = await a.evaluate(() => kb.session);
    await a.fill("[data-testid=current-password]", "wonderland");
    await a.fill("[data-testid=new-password]", "looking-glass");
    await a.click("[data-testid=change-password]");
    await a.waitForSelector("[data-testid=password-message] >> text=Password changed");

    await b.waitForSelector("[data-testid=modal-ended]", { timeout: 3000 });
    assert.match(await text(b, "ended-reason"), /password was changed/);
    assert.equal(await state(b), "revoked");

    // A took up the new tokens: same session, and its new refresh token works (the
    // replaced one would count as reuse and revoke the session).
    const afterChange = await a.evaluate(() => kb.session);
    assert.equal(afterChange.id, before.id);
    assert.equal(await a.evaluate(() => kb.fetch("/api/me").then((r) => r.status)), 200);
    await a.evaluate(() => kb.extend());
    assert.equal(await state(a), "active");
    assert.equal(await a.evaluate(() => kb.fetch("/api/orders").then((r) => r.status)), 200);

    // B needs the new password.
    await b.fill("[data-testid=reauth-password]", "wonderland");
    await b.click("[data-testid=reauth-submit]");
    await b.waitForSelector("[data-testid=reauth-error] >> text=wrong password");
    await b.fill("[data-testid=reauth-password]", "looking-glass");
    await b.click("[data-testid=reauth-submit]");
    await b.waitForSelector("[data-testid=modal-ended]", { state: "detached" });
    assert.equal(await state(b), "active");

    // A wrong current password changes nothing.
    await a.fill("[data-testid=current-password]", "wonderland");
    await a.fill("[data-testid=new-password]", "something-else");
    await a.click("[data-testid=change-password]");
    await a.waitForSelector("[data-testid=password-message] >> text=current password is wrong");
    assert.equal(await state(b), "active");
  });

  test("an operator revokes every session of the user; /metrics counts it", async () => {
    const { origin } = f.server;
    const crossSite = await fetch(`${origin}/api/admin/users/alice/revoke`, {
      method: "POST",
      headers: { Origin: "https://evil.example" },
    });
    assert.equal(crossSite.status, 403);
    assert.equal((await crossSite.json()).error, "admin_cross_site");
    assert.equal(await state(a), "active");

    const res = await fetch(`${origin}/api/admin/users/alice/revoke`, { method: "POST" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { user: "alice", revoked: 2 });
    for (const page of [a, b]) {
      await page.waitForSelector("[data-testid=modal-ended]", { timeout: 3000 });
      assert.match(await text(page, "ended-reason"), /administrator/);
    }

    const metrics = await fetch(`${origin}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type"), /^text\/plain/);
    const body = await metrics.text();
    assert.match(body, /keybound_/);
    assert.match(body, /admin_revoked/);
  });
});

describe("idle expiry", { timeout: 150_000 }, () => {
  // The warning comes 5 s before the idle end (the app asks for a quarter of the idle
  // timeout, at least 5 s).
  const f = fixture({
    KEYBOUND_ACCESS_TTL_SECS: "5",
    KEYBOUND_IDLE_TIMEOUT_SECS: "15",
    KEYBOUND_ABSOLUTE_LIFETIME_SECS: "600",
  });

  test("the prompt appears; staying signed in keeps the session; ignoring it ends it", async () => {
    const page = await f.device();
    await signIn(page, "bob", "builder");
    await recordEvents(page);
    const sessionId = await page.evaluate(() => kb.session.id);

    await page.waitForSelector("[data-testid=modal-expiring]", { timeout: 30_000 });
    await page.screenshot({ path: path.join(OUTPUT, "stay-signed-in.png") });
    const idleBefore = await page.evaluate(() => kb.session.idleExpiresAt);
    await page.click("[data-testid=stay-signed-in]");
    await page.waitForSelector("[data-testid=modal-expiring]", { state: "detached" });
    assert.equal(await state(page), "active");
    assert.equal(await page.evaluate(() => kb.session.id), sessionId);
    assert.ok((await page.evaluate(() => kb.session.idleExpiresAt)) > idleBefore, "the idle deadline moved");
    // Still good on the server.
    assert.equal(await page.evaluate(() => kb.fetch("/api/me").then((r) => r.status)), 200);

    // Ignored this time: the session ends.
    await page.waitForSelector("[data-testid=modal-expiring]", { timeout: 30_000 });
    await page.waitForSelector("[data-testid=modal-ended]", { timeout: 20_000 });
    assert.equal(await text(page, "ended-title"), "Your session expired");
    assert.match(await text(page, "ended-reason"), /without activity/);
    assert.equal(await state(page), "expired");
    const events = await sdkEvents(page);
    assert.ok(events.includes("expiring") && events.includes("expired"), events.join(","));
    assert.equal(
      await page.evaluate(() => kb.fetch("/api/me").then(() => "sent", (e) => e.code)),
      "session_expired",
    );

    // Signing in again works.
    await page.fill("[data-testid=reauth-password]", "builder");
    await page.click("[data-testid=reauth-submit]");
    await page.waitForSelector("[data-testid=modal-ended]", { state: "detached" });
    assert.equal(await state(page), "active");
  });
});

describe("the start command", { timeout: 15 * 60_000 }, () => {
  test("scripts/demo.sh starts the demo with a SQLite store and stops cleanly", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "keybound-demo-data-"));
    try {
      const demo = await startDemo(path.join(ROOT, "scripts/demo.sh"), ["--data-dir", dataDir], {}, {
        readyTimeout: 10 * 60_000,
      });
      let stopped = false;
      try {
        const res = await fetch(`${demo.origin}/api/config`);
        assert.equal(res.status, 200);
        const config = await res.json();
        assert.equal(config.public_origin, demo.origin);
        assert.match(config.store, /SQLite/);
        const page = await fetch(`${demo.origin}/`);
        assert.match(await page.text(), /<title>keybound demo<\/title>/);
        assert.match(page.headers.get("content-security-policy"), /default-src 'self'/);
        const exit = await demo.stop();
        stopped = true;
        assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}:\n${demo.output()}`);
      } finally {
        if (!stopped) await demo.stop();
      }
      const keys = await stat(path.join(dataDir, "keys.json"));
      assert.equal(keys.mode & 0o777, 0o600);
      assert.ok((await stat(path.join(dataDir, "sessions.db"))).size > 0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
