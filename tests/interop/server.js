// Starting the real `keybound-minimal` server for the interop tests.
//
// The server binary is $KEYBOUND_MINIMAL_BIN, default target/debug/keybound-minimal
// (`cargo build -p keybound-example-minimal`).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const minimalBin = resolve(
  repoRoot,
  process.env.KEYBOUND_MINIMAL_BIN ?? "target/debug/keybound-minimal",
);

if (!existsSync(minimalBin)) {
  throw new Error(
    `keybound-minimal not found at ${minimalBin}: run ` +
      "`cargo build -p keybound-example-minimal` or set KEYBOUND_MINIMAL_BIN",
  );
}

/** A free port on 127.0.0.1. */
async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** Starts keybound-minimal with `env`; resolves once it listens. */
export async function startServer(env) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("KEYBOUND_")),
  );
  const child = spawn(minimalBin, [], {
    env: { ...clean, ...env, KEYBOUND_LISTEN: `127.0.0.1:${port}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const line = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no start within 20 s: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout }).once("line", (l) => {
      clearTimeout(timer);
      ok(l);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`keybound-minimal exited ${code}: ${stderr}`));
    });
  });
  assert.equal(line, `keybound minimal example listening on ${origin}`);
  return { origin, stop: () => child.kill() };
}
