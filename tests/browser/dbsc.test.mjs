// DBSC (Device Bound Session Credentials) in real headless Chromium against the real
// examples/minimal over HTTPS with KEYBOUND_DBSC=on: a JSON sign-in without a DPoP
// header starts a DBSC session on keybound's one session lifecycle.
//
// Chromium runs DBSC only over HTTPS with a certificate it trusts: each run makes a
// certificate with openssl and starts Chromium trusting its public key, with DBSC and
// software keys switched on (lib/dbsc.mjs). The bound cookie lives as long as an
// access token: KEYBOUND_ACCESS_TTL_SECS=4 here, under the ~2 min at which Chromium
// refreshes proactively, so every request in scope is preceded by a challenged refresh.
// The refusals with exact codes (another key, replayed, stale and unknown challenges)
// are in crates/keybound-server/tests/dbsc_http.rs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { launchDbsc, makeCertificate, startMinimalDbsc, startRedis, watchDbsc } from "./lib/dbsc.mjs";

const ENV = { KEYBOUND_ACCESS_TTL_SECS: "4" };

/** A new device on `origin` signed in as alice; resolves to its parts. */
async function signIn(browser, origin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const dbsc = await watchDbsc(page);
  await page.goto(`${origin}/api/me`);
  const answer = await page.evaluate(async () => {
    const response = await fetch("/api/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "alice", password: "wonderland" }),
    });
    return { status: response.status, body: await response.json() };
  });
  assert.equal(answer.status, 200, JSON.stringify(answer));
  assert.equal(answer.body.binding, "dbsc");
  const id = answer.body.session_id;
  const created = await dbsc.waitFor((e) => e.kind === "creation");
  assert.equal(created.succeeded, true, JSON.stringify(created));
  assert.equal(created.sessionId, id);
  return { context, page, dbsc, id, created };
}

async function me(page, origin) {
  const response = await page.goto(`${origin}/api/me`);
  return { status: response.status(), body: JSON.parse(await response.text()) };
}

/** Revokes session `id` from `page` (another device of the same user, cookie-bound). */
async function revokeFrom(page, id) {
  return page.evaluate(
    async (sid) => (await fetch(`/session/sessions/${sid}`, { method: "DELETE" })).status,
    id,
  );
}

describe("DBSC in Chromium against examples/minimal", () => {
  let tls, server, browser;
  before(async () => {
    tls = await makeCertificate();
    server = await startMinimalDbsc(tls, { env: ENV });
    browser = await launchDbsc(tls.spki);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    await tls?.remove();
  });

  test("sign-in registers; an expired bound cookie holds the page load until a challenged refresh", async () => {
    const { context, page, dbsc, id, created } = await signIn(browser, server.origin);
    const session = created.creationEventDetails.newSession;
    assert.equal(session.refreshUrl, `${server.origin}/session/dbsc/refresh`);
    assert.deepEqual(session.cookieCravings.map((c) => [c.name, c.secure, c.httpOnly, c.sameSite, c.path]), [
      ["__Host-kb_dbsc", true, true, "Lax", "/"],
    ]);
    const [cookie] = await context.cookies();
    assert.equal(cookie.name, "__Host-kb_dbsc");
    assert.deepEqual(await me(page, server.origin), {
      status: 200,
      body: { user: "alice", session_id: id, binding: "dbsc" },
    });
    const challenge = await dbsc.waitFor((e) => e.kind === "challenge");
    assert.equal(challenge.challengeEventDetails.challengeResult, "Success");
    await dbsc.waitFor((e) => e.kind === "refresh" && e.succeeded);

    // The cookie has expired (gone from the jar): the page load is held, refreshed, served.
    await context.clearCookies();
    const before = dbsc.events.filter((e) => e.kind === "refresh" && e.succeeded).length;
    assert.equal((await me(page, server.origin)).status, 200);
    assert.ok(dbsc.events.filter((e) => e.kind === "refresh" && e.succeeded).length > before);
    assert.ok(!dbsc.events.some((e) => e.kind === "termination"), JSON.stringify(dbsc.events));

    // The session list shows the binding.
    const list = await page.evaluate(async () => (await fetch("/session/sessions")).json());
    assert.equal(list.sessions.find((s) => s.id === id).binding, "dbsc");
    await context.close();
  });

  test("a revocation from another device ends the session at its next request; the refresh answers continue:false", async () => {
    const { context, page, dbsc, id } = await signIn(browser, server.origin);
    assert.equal((await me(page, server.origin)).status, 200);
    const other = await signIn(browser, server.origin);
    assert.equal(await revokeFrom(other.page, id), 200);
    await other.context.close();

    assert.equal((await me(page, server.origin)).status, 401);
    const ended = await dbsc.waitFor((e) => e.kind === "termination");
    assert.equal(ended.terminationEventDetails.deletionReason, "ServerRequested");
    const count = dbsc.events.length;
    assert.equal((await me(page, server.origin)).status, 401);
    assert.equal(dbsc.events.length, count, "the browser no longer refreshes an ended session");
    await context.close();
  });

  test("logout ends a DBSC session", async () => {
    const { context, page, dbsc } = await signIn(browser, server.origin);
    assert.equal((await me(page, server.origin)).status, 200);
    const status = await page.evaluate(async () => (await fetch("/session/logout", { method: "POST" })).status);
    assert.equal(status, 204);
    assert.equal((await me(page, server.origin)).status, 401);
    await dbsc.waitFor((e) => e.kind === "termination");
    await context.close();
  });
});

describe("DBSC on two nodes sharing one Redis", () => {
  let tls, redis, nodeA, nodeB, browser, dir;
  before(async () => {
    tls = await makeCertificate();
    redis = await startRedis();
    const { mkdtemp } = await import("node:fs/promises");
    const os = await import("node:os");
    const path = await import("node:path");
    dir = await mkdtemp(path.join(os.tmpdir(), "kb-dbsc-nodes-"));
    const env = { ...ENV, KEYBOUND_STORE: redis.url, KEYBOUND_KEY_FILE: path.join(dir, "keys.json") };
    nodeA = await startMinimalDbsc(tls, { env });
    // Both nodes serve one public origin (nodes behind a load balancer).
    nodeB = await startMinimalDbsc(tls, { env, origin: nodeA.origin });
    browser = await launchDbsc(tls.spki);
  });
  after(async () => {
    await browser?.close();
    await nodeA?.stop();
    await nodeB?.stop();
    await redis?.stop();
    await tls?.remove();
    if (dir) await (await import("node:fs/promises")).rm(dir, { recursive: true, force: true });
  });

  test("a session registered on one node is served, revoked and terminated across nodes", async () => {
    const { context, page, dbsc, id } = await signIn(browser, nodeA.origin);
    assert.equal((await me(page, nodeA.origin)).status, 200);
    // The bound cookie (cookies ignore ports) is accepted by the other node too.
    const onB = await context.newPage();
    const atB = await me(onB, nodeB.origin);
    assert.equal(atB.status, 200, JSON.stringify(atB));
    assert.equal(atB.body.session_id, id);
    assert.equal(await revokeFrom(onB, id), 200);

    assert.equal((await me(page, nodeA.origin)).status, 401);
    const ended = await dbsc.waitFor((e) => e.kind === "termination");
    assert.equal(ended.terminationEventDetails.deletionReason, "ServerRequested");
    await context.close();
  });
});
