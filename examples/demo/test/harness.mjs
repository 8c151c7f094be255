// Plumbing shared by the demo's browser tests: building the demo, starting its server
// on a free port, headless Chromium, and the paths they use.
import { execFile, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const OUTPUT = path.join(ROOT, "examples/demo/test/output");
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, "");

/** Headless Chromium, with `args` added to the usual flags. */
export function launch(args = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...args,
    ],
  });
}

/**
 * Builds the SDK, the web app and the server with `scripts/demo.sh --build-only` (only
 * what changed is rebuilt) and returns the server executable.
 */
export async function buildDemo() {
  const { stderr } = await promisify(execFile)(path.join(ROOT, "scripts/demo.sh"), ["--build-only"], {
    cwd: ROOT,
    maxBuffer: 64 << 20,
    timeout: 30 * 60_000,
  });
  const built = plain(stderr).match(/built: (.+)$/m);
  if (!built) throw new Error(`scripts/demo.sh --build-only did not name the binary:\n${stderr}`);
  await mkdir(OUTPUT, { recursive: true });
  return built[1].trim();
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `command args` with the demo's settings in `env` on a free loopback port and
 * resolves once it printed `keybound demo ready at <origin>`. `env` may be a function of
 * the port (for settings that name it, such as the public origin).
 */
export async function startDemo(command, args = [], env = {}, { readyTimeout = 60_000 } = {}) {
  const port = await freePort();
  if (typeof env === "function") env = env(port);
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, KEYBOUND_LISTEN: `127.0.0.1:${port}`, RUST_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready after ${readyTimeout} ms:\n${output}`)), readyTimeout);
    const onData = (data) => {
      output += plain(String(data));
      const ready = output.match(/keybound demo ready at (https?:\/\/\S+)/);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? signal}) before it was ready:\n${output}`));
    });
  });
  return {
    origin,
    port,
    output: () => output,
    /** Sends SIGTERM and resolves with how the process ended. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

