// Proofs made by the SDK (both key kinds) verify with `keybound verify`, the CLI that
// runs the server's checks, including an access token bound to the SDK's key. Skipped
// until the CLI has `verify` (KEYBOUND_BIN, or built from crates/keybound-cli).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ROOT, SDK_MISSING, launch, openApp, sdkBuilt, serveFiles } from "./lib/harness.mjs";

const exec = promisify(execFile);

async function cliBinary() {
  if (process.env.KEYBOUND_BIN) return process.env.KEYBOUND_BIN;
  try {
    const { stdout } = await exec(
      "cargo",
      ["build", "--quiet", "-p", "keybound-cli", "--message-format=json-render-diagnostics"],
      { cwd: ROOT, maxBuffer: 64 << 20 },
    );
    return stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l))
      .find((m) => m.reason === "compiler-artifact" && m.executable)?.executable;
  } catch {
    return undefined;
  }
}

async function hasVerify(bin) {
  if (!bin) return false;
  try {
    const { stdout } = await exec(bin, ["verify", "--help"]);
    return stdout.includes("--proof");
  } catch {
    return false;
  }
}

const bin = sdkBuilt ? await cliBinary() : undefined;
const skip = !sdkBuilt ? SDK_MISSING : !(await hasVerify(bin)) && "`keybound verify` is not available yet";
const ORIGIN = "http://localhost:47817";
const URL_ = "https://api.example.com/orders";

/** Runs the CLI; resolves to {code, stdout} whatever the exit code. */
async function run(...args) {
  try {
    const { stdout } = await exec(bin, args);
    return { code: 0, stdout };
  } catch (error) {
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

describe("SDK proofs and `keybound verify`", { skip }, () => {
  let dir;
  let browser;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "keybound-cli-"));
    assert.equal((await run("keygen", "--out", path.join(dir, "server.jwk"))).code, 0);
    const jwks = await run("jwks", `@${path.join(dir, "server.jwk")}`);
    assert.equal(jwks.code, 0, jwks.stderr);
    await writeFile(path.join(dir, "jwks.json"), jwks.stdout);
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const forceWasmKeys of [false, true]) {
    test(`${forceWasmKeys ? "wasm" : "WebCrypto"} key: proof with ath verifies; a wrong method is refused`, async () => {
      const context = await browser.newContext();
      await serveFiles(context, ORIGIN);
      const page = await openApp(context, ORIGIN);
      const { thumbprint } = await page.evaluate((o) => start(o), {
        storageName: "cli",
        forceWasmKeys,
        allowedOrigins: [new URL(URL_).origin],
      });
      const token = await run(
        "token", "--key", `@${path.join(dir, "server.jwk")}`, "--sub", "alice", "--sid", "s-1",
        "--jkt", thumbprint, "--ttl", "300",
      );
      assert.equal(token.code, 0, token.stderr);
      const accessToken = token.stdout.trim();
      const proof = await page.evaluate(
        ([url, accessToken]) => kb.createProof("POST", `${url}?page=2`, { accessToken }),
        [URL_, accessToken],
      );
      await context.close();

      const jwksFile = path.join(dir, "jwks.json");
      const ok = await run(
        "verify", "--method", "POST", "--url", URL_, "--proof", proof,
        "--access-token", accessToken, "--jwks", `@${jwksFile}`,
      );
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.equal(JSON.parse(ok.stdout).jkt, thumbprint);

      const wrong = await run("verify", "--method", "GET", "--url", URL_, "--proof", proof);
      assert.equal(wrong.code, 1);
      assert.equal(JSON.parse(wrong.stdout).error_code, "htm_mismatch");
    });
  }
});
