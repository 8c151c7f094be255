// The demo's DBSC mode in headless Chromium: the demo over HTTPS (a throwaway
// certificate) with KEYBOUND_DBSC=on; one browser context signs in with the SDK's key
// (DPoP), another with the browser's own key (DBSC), and each device list shows both
// sessions with their binding.
//
// Chromium runs DBSC without a TPM only with software keys switched on and over HTTPS
// with a certificate it trusts (--ignore-certificate-errors-spki-list with the hash of
// the certificate's public key); plain http://localhost does nothing.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { OUTPUT, buildDemo, launch, startDemo } from "./harness.mjs";

const DBSC_FEATURES = "DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting";

/** A self-signed P-256 certificate for localhost and 127.0.0.1: `{cert, key, spki, remove()}`. */
async function makeCertificate() {
  const dir = await mkdtemp(path.join(os.tmpdir(), "keybound-demo-tls-"));
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ]);
  const der = new X509Certificate(await readFile(cert, "utf8")).publicKey.export({ type: "spki", format: "der" });
  return {
    cert,
    key,
    spki: createHash("sha256").update(der).digest("base64"),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Headless Chromium with DBSC on, trusting the certificate whose SPKI hash is `spki`. */
function launchDbsc(spki) {
  return launch([
    "--no-first-run",
    `--enable-features=${DBSC_FEATURES}`,
    `--ignore-certificate-errors-spki-list=${spki}`,
  ]);
}

/** The DevTools DBSC events of `page`'s context, as `kind:ok|failed` strings. */
async function watchDbsc(page) {
  const cdp = await page.context().newCDPSession(page);
  const kinds = [];
  cdp.on("Network.deviceBoundSessionEventOccurred", (event) => {
    const detail = Object.keys(event).find((k) => k.endsWith("EventDetails"));
    kinds.push(`${detail ? detail.replace("EventDetails", "") : "unknown"}:${event.succeeded ? "ok" : "failed"}`);
  });
  await cdp.send("Network.enable");
  await cdp.send("Network.enableDeviceBoundSessions", { enable: true });
  return kinds;
}

async function openDevice(browser, origin) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(error));
  const dbsc = await watchDbsc(page);
  await page.goto(`${origin}/`);
  await page.waitForSelector("[data-testid=signin]");
  return { page, dbsc };
}

async function fillCredentials(page, username, password) {
  await page.fill("[data-testid=signin-username]", username);
  await page.fill("[data-testid=signin-password]", password);
}

/** `[binding, current]` of each active device in the page's list, sorted. */
async function listed(page) {
  const items = await page.locator("[data-testid=device]").evaluateAll((els) =>
    els
      .filter((el) => !el.closest("details"))
      .map((el) => [el.querySelector("[data-testid=binding]")?.textContent ?? "", el.dataset.current === "true"]),
  );
  return items.sort();
}

const bin = await buildDemo();

describe("DBSC mode", { timeout: 180_000 }, () => {
  let tls;
  let server;
  let browser;
  const pages = [];

  before(async () => {
    tls = await makeCertificate();
    server = await startDemo(bin, ["--store", "memory"], (port) => ({
      KEYBOUND_TLS_CERT: tls.cert,
      KEYBOUND_TLS_KEY: tls.key,
      KEYBOUND_DBSC: "on",
      KEYBOUND_PUBLIC_ORIGIN: `https://localhost:${port}`,
    }));
    browser = await launchDbsc(tls.spki);
  });

  after(async () => {
    for (const page of pages) assert.deepEqual(page.errors, [], "no page errors");
    await browser?.close();
    await server?.stop();
    await tls?.remove();
  });

  test("a DBSC sign-in and a DPoP sign-in are listed side by side, each with its binding", async () => {
    assert.match(server.origin, /^https:\/\/localhost:\d+$/);
    assert.match(server.output(), /DBSC: on/);

    // A device signed in with the SDK's key.
    const dpop = await openDevice(browser, server.origin);
    pages.push(dpop.page);
    await fillCredentials(dpop.page, "alice", "wonderland");
    await dpop.page.click("[data-testid=signin-submit]");
    await dpop.page.waitForSelector("[data-testid=session-panel]");
    await dpop.page.waitForSelector("[data-testid=device][data-current=true] [data-testid=binding]");
    assert.deepEqual(await listed(dpop.page), [["dpop", true]]);

    // A device signed in with the browser's own key: the browser registers at once.
    const dbsc = await openDevice(browser, server.origin);
    pages.push(dbsc.page);
    await fillCredentials(dbsc.page, "alice", "wonderland");
    await dbsc.page.check("[data-testid=signin-binding-dbsc]");
    await dbsc.page.click("[data-testid=signin-submit]");
    await dbsc.page.waitForSelector("[data-testid=dbsc-panel]");
    await dbsc.page.waitForFunction(() => document.querySelectorAll("[data-testid=device]").length === 2);
    assert.deepEqual(await listed(dbsc.page), [["dbsc", true], ["dpop", false]]);
    assert.ok(dbsc.dbsc.includes("creation:ok"), `DBSC events: ${dbsc.dbsc.join(", ")}`);
    const cookies = await dbsc.page.context().cookies();
    const bound = cookies.find((c) => c.name === "__Host-kb_dbsc");
    assert.ok(bound, "the bound cookie is set");
    assert.equal(bound.httpOnly, true);
    assert.equal(bound.secure, true);
    // The DPoP device's page holds no DBSC session.
    assert.deepEqual(dpop.dbsc, []);

    // The DPoP device sees the DBSC session beside its own.
    await dpop.page.click("[data-testid=reload-devices]");
    await dpop.page.waitForFunction(() => document.querySelectorAll("[data-testid=device][data-state=active]").length === 2);
    assert.deepEqual(await listed(dpop.page), [["dbsc", false], ["dpop", true]]);
    await dbsc.page.locator("[data-testid=devices]").screenshot({ path: path.join(OUTPUT, "dbsc-devices.png") });

    // A page load in the DBSC session is served by the cookie, with no script.
    const me = await dbsc.page.evaluate(async () => (await fetch("/api/me")).json());
    assert.equal(me.binding, "dbsc");
    assert.equal(me.user, "alice");

    // The DPoP device revokes the DBSC one: its next request is refused.
    await dpop.page.click("[data-testid=device][data-current=false] [data-testid=revoke]");
    await dpop.page.waitForFunction(() => document.querySelectorAll("[data-testid=device][data-state=active]").length === 1);
    const refused = await dbsc.page.evaluate(async () => {
      const res = await fetch("/api/me");
      return { status: res.status, code: (await res.json()).error_code };
    });
    assert.deepEqual(refused, { status: 401, code: "session_revoked" });
  });

  test("signing out of a DBSC session ends it and clears the cookie", async () => {
    const device = await openDevice(browser, server.origin);
    pages.push(device.page);
    await fillCredentials(device.page, "bob", "builder");
    await device.page.check("[data-testid=signin-binding-dbsc]");
    await device.page.click("[data-testid=signin-submit]");
    await device.page.waitForSelector("[data-testid=dbsc-panel]");
    // A reload finds the session again (the cookie, no script state).
    await device.page.reload();
    await device.page.waitForSelector("[data-testid=dbsc-panel]");
    await device.page.click("[data-testid=dbsc-sign-out]");
    await device.page.waitForSelector("[data-testid=signin]");
    const cookies = await device.page.context().cookies();
    assert.equal(cookies.find((c) => c.name === "__Host-kb_dbsc"), undefined);
    const status = await device.page.evaluate(async () => (await fetch("/api/me")).status);
    assert.equal(status, 401);
  });
});
