// Shared plumbing for the browser tests: Chromium through playwright-core, the package
// and test pages answered from disk, and the real minimal example server.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const JS_DIR = path.join(ROOT, "js");
const PAGES = path.join(ROOT, "tests/browser/pages");

/** Whether `js/build.sh` has produced the package. */
export const sdkBuilt = existsSync(path.join(JS_DIR, "pkg/keybound.js"));
export const SDK_MISSING = "the SDK is not built: run js/build.sh";

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

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".css": "text/css",
};

async function fulfilFrom(route, dir, prefix, extraHeaders = {}) {
  const url = new URL(route.request().url());
  const file = path.resolve(dir, decodeURIComponent(url.pathname.slice(prefix.length)) || "index.html");
  if (!file.startsWith(dir + path.sep)) return route.fulfill({ status: 403, body: "forbidden" });
  try {
    const body = await readFile(file);
    await route.fulfill({
      status: 200,
      body,
      headers: {
        "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
        ...extraHeaders,
      },
    });
  } catch {
    await route.fulfill({ status: 404, body: "not found" });
  }
}

/**
 * Serves the package (`js/`) under `/__kb/` and the test pages under `/__test/` at
 * `origin` within `context`: Playwright answers those requests from disk, so the page
 * runs on the API server's origin (same-origin requests, matching `htu`) while every
 * other request reaches the real server.
 */
export async function serveFiles(context, origin, { dirs = {}, headers = {} } = {}) {
  const all = { "/__kb/": JS_DIR, "/__test/": PAGES, ...dirs };
  for (const [prefix, dir] of Object.entries(all)) {
    await context.route(`${origin}${prefix}**`, (route) => fulfilFrom(route, dir, prefix, headers));
  }
}

/**
 * A real static HTTP server on a loopback port for `dirs` (`{"/__kb/": dir, …}`), for
 * measurements where Playwright's request interception would add its own latency.
 * Resolves to `{origin, close()}`.
 */
export async function startStaticServer({ dirs = {}, headers = {} } = {}) {
  const all = { "/__kb/": JS_DIR, "/__test/": PAGES, ...dirs };
  const server = http.createServer(async (req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const prefix = Object.keys(all).find((p) => pathname.startsWith(p));
    const file = prefix && path.resolve(all[prefix], pathname.slice(prefix.length) || "index.html");
    if (!file || !file.startsWith(all[prefix] + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
        ...headers,
      });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Opens the test page in a new tab of `context` and waits for its helpers. */
export async function openApp(context, origin) {
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  await page.goto(`${origin}/__test/app.html`);
  await page.waitForFunction(() => window.ready === true);
  return page;
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

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let binary;

/**
 * The minimal example server's executable: `KEYBOUND_MINIMAL_BIN`, else built with cargo
 * from `examples/minimal`. `null` when neither exists (the end-to-end tests then skip).
 */
export async function minimalBinary() {
  if (binary !== undefined) return binary;
  if (process.env.KEYBOUND_MINIMAL_BIN) return (binary = process.env.KEYBOUND_MINIMAL_BIN);
  const manifest = path.join(ROOT, "examples/minimal/Cargo.toml");
  if (!existsSync(manifest)) return (binary = null);
  const { stdout } = await promisify(execFile)(
    "cargo",
    ["build", "--quiet", "--manifest-path", manifest, "--message-format=json-render-diagnostics"],
    { cwd: ROOT, maxBuffer: 64 << 20 },
  );
  const executables = stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line))
    .filter((m) => m.reason === "compiler-artifact" && m.executable && m.target.kind.includes("bin"));
  binary = executables.at(-1)?.executable ?? null;
  return binary;
}

/** Whether the end-to-end tests can run (the server is there). */
export async function serverAvailable() {
  try {
    return (await minimalBinary()) !== null;
  } catch (error) {
    console.error("building examples/minimal failed:", error.message);
    return false;
  }
}

/**
 * Starts the minimal example on a free loopback port with `env` (short lifetimes,
 * nonces, …). Resolves once it accepts connections.
 */
export async function startServer(env = {}) {
  const bin = await minimalBinary();
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = spawn(bin, [], {
    env: {
      ...process.env,
      KEYBOUND_LISTEN: `127.0.0.1:${port}`,
      KEYBOUND_PUBLIC_ORIGIN: origin,
      KEYBOUND_STORE: "memory",
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`examples/minimal exited:\n${output}`);
    if (await canConnect(port)) break;
    if (i > 300) {
      child.kill();
      throw new Error(`examples/minimal did not start listening:\n${output}`);
    }
    await sleep(50);
  }
  return {
    origin,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Counts the requests of `context` whose path is `pathname`, by method. */
export function countRequests(context, pathname) {
  const counts = { total: 0 };
  context.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname === pathname) {
      counts.total += 1;
      counts[request.method()] = (counts[request.method()] ?? 0) + 1;
    }
  });
  return counts;
}

/** Polls `check` (sync or async) until it returns a truthy value or `ms` pass. */
export async function eventually(check, ms = 10_000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * An init script (`context.addInitScript(withoutEd25519)`): WebCrypto refuses Ed25519
 * as a browser without it does (Chrome before 137: `generateKey` and `importKey` reject
 * with NotSupportedError), unless the page's localStorage says this browser has
 * "gained" it (`has-ed25519` = `yes`, an update).
 */
export function withoutEd25519() {
  if (localStorage.getItem("has-ed25519") === "yes") return;
  const isEd25519 = (algorithm) =>
    String(typeof algorithm === "string" ? algorithm : algorithm?.name).toLowerCase() === "ed25519";
  const refuse = () => Promise.reject(new DOMException("Algorithm: Unrecognized name", "NotSupportedError"));
  const { generateKey, importKey } = SubtleCrypto.prototype;
  SubtleCrypto.prototype.generateKey = function (algorithm, ...rest) {
    return isEd25519(algorithm) ? refuse() : generateKey.call(this, algorithm, ...rest);
  };
  SubtleCrypto.prototype.importKey = function (format, data, algorithm, ...rest) {
    return isEd25519(algorithm) ? refuse() : importKey.call(this, format, data, algorithm, ...rest);
  };
}
