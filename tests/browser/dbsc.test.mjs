// DBSC (Device Bound Session Credentials) in real headless Chromium, against the DBSC
// probe (crates/keybound-server/examples/dbsc_probe.rs), which runs keybound's DBSC
// code: registration headers and challenges from keybound-proto, proofs checked by
// keybound-proto and verified by keybound-server's DbscSignatures.
//
// Chromium runs DBSC only over HTTPS with a certificate it trusts: each run makes a
// certificate with openssl and starts Chromium trusting its public key, with DBSC and
// software keys switched on (lib/dbsc.mjs). The probe's bound cookie lives 4 s, under
// the ~2 min at which Chromium refreshes proactively, so every registration is
// followed at once by a challenged refresh.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchDbsc, makeCertificate, startDbscProbe, watchDbsc } from "./lib/dbsc.mjs";

describe("DBSC in Chromium against keybound's DBSC code", () => {
  let tls, probe, browser;
  before(async () => {
    tls = await makeCertificate();
    probe = await startDbscProbe(tls, { cookieTtlSecs: 4 });
    browser = await launchDbsc(tls.spki);
  });
  after(async () => {
    await browser?.close();
    await probe?.stop();
    await tls?.remove();
  });

  /** A new device on the probe's origin signed in with `query`; resolves to its parts. */
  async function signIn(query = "") {
    const context = await browser.newContext();
    const page = await context.newPage();
    const dbsc = await watchDbsc(page);
    await page.goto(`${probe.origin}/probe/page`);
    const { session_id: id } = await page.evaluate(
      async (q) => (await fetch(`/probe/sign-in${q}`, { method: "POST" })).json(),
      query,
    );
    const created = await dbsc.waitFor((e) => e.kind === "creation");
    assert.equal(created.succeeded, true, JSON.stringify(created));
    assert.equal(created.sessionId, id);
    return { context, page, dbsc, id, created };
  }

  const me = async (page) => {
    const response = await page.goto(`${probe.origin}/probe/me`);
    return { status: response.status(), body: JSON.parse(await response.text()) };
  };

  test("sign-in registers an ES256 key; a lost bound cookie is refreshed through a signed challenge before the page loads", async () => {
    const { context, page, dbsc, id, created } = await signIn();
    const session = created.creationEventDetails.newSession;
    assert.equal(session.refreshUrl, `${probe.origin}/probe/refresh`);
    assert.deepEqual(session.cookieCravings.map((c) => [c.name, c.secure, c.httpOnly, c.sameSite, c.path]), [
      ["kb_dbsc", true, true, "Lax", "/"],
    ]);
    const [cookie] = await context.cookies();
    assert.deepEqual([cookie.name, cookie.secure, cookie.httpOnly, cookie.sameSite], ["kb_dbsc", true, true, "Lax"]);

    // The cookie has less than ~2 min left: the next request in scope makes Chromium
    // refresh, first unsigned (403 + challenge), then signing the challenge.
    assert.deepEqual(await me(page), { status: 200, body: { session_id: id } });
    const challenge = await dbsc.waitFor((e) => e.kind === "challenge");
    assert.equal(challenge.challengeEventDetails.challengeResult, "Success");
    assert.match(challenge.challengeEventDetails.challenge, /^[A-Za-z0-9_-]{54}$/);
    await dbsc.waitFor((e) => e.kind === "refresh" && e.succeeded);

    // Without the bound cookie, the page load is held until a refresh restores it.
    await context.clearCookies();
    const refreshesBefore = dbsc.events.filter((e) => e.kind === "refresh" && e.succeeded).length;
    assert.deepEqual(await me(page), { status: 200, body: { session_id: id } });
    assert.ok(dbsc.events.filter((e) => e.kind === "refresh" && e.succeeded).length > refreshesBefore);
    assert.ok(!dbsc.events.some((e) => e.kind === "termination"), JSON.stringify(dbsc.events));
    await context.close();
  });

  test("an RS256 key registers and refreshes too", async () => {
    const { context, page, dbsc, id } = await signIn("?alg=RS256");
    await context.clearCookies();
    assert.deepEqual(await me(page), { status: 200, body: { session_id: id } });
    await dbsc.waitFor((e) => e.kind === "refresh" && e.succeeded);
    await context.close();
  });

  test("a revocation from another device ends the session: the refresh answers continue:false", async () => {
    const { context, page, dbsc, id } = await signIn();
    assert.equal((await me(page)).status, 200);

    const other = await browser.newContext();
    const otherPage = await other.newPage();
    await otherPage.goto(`${probe.origin}/probe/page`);
    const status = await otherPage.evaluate(
      async (sid) => (await fetch(`/probe/revoke/${sid}`, { method: "POST" })).status,
      id,
    );
    assert.equal(status, 204);
    await other.close();

    await context.clearCookies();
    assert.equal((await me(page)).status, 401);
    const ended = await dbsc.waitFor((e) => e.kind === "termination");
    assert.equal(ended.terminationEventDetails.deletionReason, "ServerRequested");
    const refresh = dbsc.events.findLast((e) => e.kind === "refresh");
    assert.equal(refresh.refreshEventDetails.fetchResult, "ServerRequestedTermination");
    // The session is gone from the browser: no refresh is tried any more.
    const count = dbsc.events.length;
    assert.equal((await me(page)).status, 401);
    assert.equal(dbsc.events.length, count);
    await context.close();
  });
});
