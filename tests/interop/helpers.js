// Shared helpers for the interop tests: running the `keybound` binary, reading the
// shared vectors, base64url and SHA-256.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "..", "..");
export const vectorsDir = join(repoRoot, "tests", "vectors");

/** Path of the `keybound` binary: $KEYBOUND_BIN, or target/debug/keybound. */
export const keyboundBin = resolve(repoRoot, process.env.KEYBOUND_BIN ?? "target/debug/keybound");

if (!existsSync(keyboundBin)) {
  throw new Error(
    `keybound binary not found at ${keyboundBin}: run \`cargo build -p keybound-cli\` ` +
      "or set KEYBOUND_BIN",
  );
}

/** Runs `keybound ARGS…`; returns { code, stdout, stderr } with stdout trimmed. */
export function keybound(...args) {
  const out = spawnSync(keyboundBin, args, { encoding: "utf8" });
  if (out.error) throw out.error;
  return { code: out.status, stdout: out.stdout.trim(), stderr: out.stderr };
}

/** Runs `keybound ARGS…`, expects exit 0 and returns stdout. */
export function keyboundOk(...args) {
  const out = keybound(...args);
  if (out.code !== 0) {
    throw new Error(`keybound ${args[0]} exited ${out.code}: ${out.stderr}`);
  }
  return out.stdout;
}

/** A temporary directory removed when the process exits. */
export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "keybound-interop-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A fresh device key (`alg`: EdDSA, the default, or ES256), server key and JWKS, as
 * files in a temporary directory.
 */
export function setup(alg = "EdDSA") {
  const dir = tempDir();
  const device = join(dir, "device.jwk");
  const server = join(dir, "server.jwk");
  keyboundOk("keygen", "--alg", alg, "--out", device);
  keyboundOk("keygen", "--out", server);
  const jwksText = keyboundOk("jwks", `@${server}`);
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, jwksText);
  return {
    dir,
    device: `@${device}`,
    server: `@${server}`,
    jwks: JSON.parse(jwksText),
    jwksArg: `@${jwksFile}`,
    jkt: keyboundOk("thumbprint", `@${device}`),
  };
}

export function readVector(name) {
  return JSON.parse(readFileSync(join(vectorsDir, name), "utf8"));
}

export function b64u(bytes) {
  return Buffer.from(bytes).toString("base64url");
}

export async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

export function hex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

export const nowSecs = () => Math.floor(Date.now() / 1000);
