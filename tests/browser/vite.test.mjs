// A fresh Vite app installs the packed tarball (js/keybound-<version>.tgz, made by
// js/build.sh), builds, and the built app runs in Chromium.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { JS_DIR, launch, openApp, serveFiles } from "./lib/harness.mjs";

const run = promisify(execFile);
const tarball = existsSync(JS_DIR)
  ? readdirSync(JS_DIR).find((f) => /^keybound-.*\.tgz$/.test(f))
  : undefined;
const VITE = path.resolve(path.dirname(new URL(import.meta.url).pathname), "node_modules/vite/bin/vite.js");
const skip = !tarball ? "no tarball: run js/build.sh" : !existsSync(VITE) && "vite is not installed (npm install)";
const ORIGIN = "http://localhost:47816";

describe("a Vite app using the tarball", { skip }, () => {
  let dir;
  let browser;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "keybound-vite-"));
    await writeFile(
      path.join(dir, "package.json"),
      JSON.stringify({
        name: "keybound-vite-app",
        private: true,
        type: "module",
        dependencies: { keybound: `file:${path.join(JS_DIR, tarball)}` },
      }),
    );
    await writeFile(
      path.join(dir, "index.html"),
      '<!doctype html><meta charset="utf-8"><title>app</title><script type="module" src="/main.ts"></script>\n',
    );
    await writeFile(
      path.join(dir, "main.ts"),
      `import { Keybound, KeyboundError, type SessionState } from "keybound";

(async () => {
  const kb = await Keybound.init({ storageName: "vite-app" });
  const state: SessionState = kb.state;
  const proof = await kb.createProof("GET", location.href);
  let code = "";
  try {
    await kb.fetch("/api/me");
  } catch (error) {
    if (error instanceof KeyboundError) code = error.code;
  }
  Object.assign(window, { result: { state, keyKind: kb.keyKind, proof, code } });
})();
`,
    );
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: dir });
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("builds, ships the wasm as an asset, and runs", async () => {
    await run(process.execPath, [VITE, "build", "--logLevel", "warn"], { cwd: dir });
    const assets = await readdir(path.join(dir, "dist/assets"));
    assert.ok(assets.some((f) => f.endsWith(".wasm")), `no .wasm among ${assets}`);

    const context = await browser.newContext();
    await serveFiles(context, ORIGIN, { dirs: { "/": path.join(dir, "dist") } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e));
    await page.goto(`${ORIGIN}/index.html`);
    const result = await page.waitForFunction(() => window.result).then((h) => h.jsonValue());
    assert.deepEqual(errors, []);
    assert.equal(result.state, "anonymous");
    assert.equal(result.keyKind, "webcrypto");
    assert.equal(result.code, "not_logged_in");
    assert.equal(result.proof.split(".").length, 3);
    await context.close();
  });
});
