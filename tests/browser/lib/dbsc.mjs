// Plumbing for the DBSC (Device Bound Session Credentials) browser tests: a throwaway
// TLS certificate for 127.0.0.1/localhost, Chromium started so that it trusts that
// certificate and runs DBSC with software keys, and the DevTools DBSC events.
//
// Chromium only runs DBSC over HTTPS with a certificate it trusts: plain
// http://localhost and --ignore-certificate-errors do nothing. Trust comes from
// --ignore-certificate-errors-spki-list with the base64 SHA-256 of the certificate's
// SubjectPublicKeyInfo. Without a TPM the software-key feature must be switched on.
import { execFile, spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { eventually, freePort, launch, minimalBinary } from "./harness.mjs";

/** The Chromium features DBSC needs on a machine without a TPM. */
export const DBSC_FEATURES = "DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting";

/**
 * Makes a self-signed P-256 certificate for `localhost` and `127.0.0.1` with openssl in
 * a fresh temporary directory. Resolves to `{dir, cert, key, spki, remove()}`: the PEM
 * paths, the SPKI hash Chromium is told to trust, and a function deleting the files.
 */
export async function makeCertificate({ days = 2 } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "keybound-tls-"));
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  try {
    await promisify(execFile)("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      String(days),
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make a test certificate: ${error.stderr || error.message}`);
  }
  return {
    dir,
    cert,
    key,
    spki: spkiHash(await readFile(cert, "utf8")),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * The base64 SHA-256 of a PEM certificate's SubjectPublicKeyInfo, the value
 * `--ignore-certificate-errors-spki-list` takes (the same as
 * `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`).
 */
export function spkiHash(certPem) {
  const der = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64");
}

/** Starts headless Chromium with DBSC on, trusting the certificate whose SPKI hash is `spki`. */
export function launchDbsc(spki) {
  return launch([
    "--no-first-run",
    `--enable-features=${DBSC_FEATURES}`,
    `--ignore-certificate-errors-spki-list=${spki}`,
  ]);
}

/**
 * Collects the DevTools DBSC events (`Network.deviceBoundSessionEventOccurred`) of
 * `page`'s browser context. Resolves to `{events, kinds(), waitFor(predicate, ms)}`;
 * each event is the DevTools payload with `kind` added: `creation`, `refresh`,
 * `challenge` or `termination`.
 */
export async function watchDbsc(page) {
  const cdp = await page.context().newCDPSession(page);
  const events = [];
  const waiters = new Set();
  cdp.on("Network.deviceBoundSessionEventOccurred", (event) => {
    const detail = Object.keys(event).find((k) => k.endsWith("EventDetails"));
    const entry = { kind: detail ? detail.replace("EventDetails", "") : "unknown", ...event };
    events.push(entry);
    for (const waiter of waiters) waiter(entry);
  });
  await cdp.send("Network.enable");
  await cdp.send("Network.enableDeviceBoundSessions", { enable: true });
  return {
    events,
    kinds: () => events.map((e) => `${e.kind}:${e.succeeded ? "ok" : "failed"}`),
    /** Resolves to the first event (seen or coming) for which `predicate` holds. */
    waitFor(predicate, ms = 10_000) {
      const seen = events.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching DBSC event within ${ms} ms; got: ${JSON.stringify(events)}`));
        }, ms);
        const waiter = (entry) => {
          if (!predicate(entry)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(entry);
        };
        waiters.add(waiter);
      });
    },
  };
}

/** Decodes the header and payload of a compact JWS without checking anything. */
export function decodeJws(jws) {
  const [header, payload] = jws.replace(/^"|"$/g, "").split(".");
  const part = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return { header: part(header), payload: part(payload) };
}

/**
 * Starts examples/minimal over HTTPS with DBSC on and the certificate `tls` (from
 * `makeCertificate`) on a free port of 127.0.0.1; its origin is `https://localhost:PORT`
 * unless `origin` says otherwise (nodes behind one origin). `env` adds settings.
 * Resolves once it listens to `{origin, port, output(), stop()}`.
 */
export async function startMinimalDbsc(tls, { env = {}, origin } = {}) {
  const bin = await minimalBinary();
  if (!bin) throw new Error("examples/minimal is not built");
  const port = await freePort();
  const ownOrigin = `https://localhost:${port}`;
  const child = spawn(bin, [], {
    env: {
      ...process.env,
      KEYBOUND_LISTEN: `127.0.0.1:${port}`,
      KEYBOUND_PUBLIC_ORIGIN: origin ?? ownOrigin,
      KEYBOUND_TLS_CERT: tls.cert,
      KEYBOUND_TLS_KEY: tls.key,
      KEYBOUND_DBSC: "on",
      KEYBOUND_STORE: "memory",
      RUST_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  await eventually(() => {
    if (child.exitCode !== null) throw new Error(`examples/minimal exited:\n${output}`);
    return output.includes("listening on");
  }, 20_000, "examples/minimal to listen");
  return {
    origin: ownOrigin,
    port,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A redis-server on a free loopback port, without persistence: `{url, stop()}`. */
export async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  await eventually(() => {
    if (child.exitCode !== null) throw new Error(`redis-server exited:\n${output}`);
    return output.includes("Ready to accept connections");
  }, 10_000, "redis-server to start");
  return {
    url: `redis://127.0.0.1:${port}/`,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
