// Browser SDK budgets: download size, proof generation time, time to the first signed
// request. Prints a Markdown table for BENCHMARKS.md.
//   (cd tests/browser && node bench.mjs)        after js/build.sh
//   KEYBOUND_BENCH_BEFORE=dir node bench.mjs    also starts, alternately in the same run,
//                                               an earlier build unpacked in `dir` (its
//                                               package.json names the entry file)
import { FALLBACK, START, sizes as measure, total } from "../../js/size.mjs";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { SDK_MISSING, launch, openApp, sdkBuilt, startStaticServer, withoutEd25519 } from "./lib/harness.mjs";

if (!sdkBuilt) {
  console.error(SDK_MISSING);
  process.exit(1);
}

const PROOFS = 1000;

// `gzip -9` of what a page loads before `Keybound.init()` resolves (start), and of the
// fallback signer (fetched only with forceWasmKeys).
const sizes = measure([...START, ...FALLBACK]);
const totalGzip = total(measure(START));
const fallbackGzip = total(measure(FALLBACK));
const files = Object.keys(sizes);

const BEFORE = process.env.KEYBOUND_BENCH_BEFORE;
const beforeEntry = BEFORE
  ? `/__before/${JSON.parse(readFileSync(path.join(BEFORE, "package.json"), "utf8")).main.replace(/^\.\//, "")}`
  : null;

// The machine is shared: the load average goes with every figure.
const loadAtStart = loadavg()[0];
const browser = await launch();
// A real HTTP server (no interception latency); cross-origin isolation gives
// performance.now() microsecond resolution.
const server = await startStaticServer({
  dirs: BEFORE ? { "/__before/": path.resolve(BEFORE) } : {},
  headers: {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
  },
});

async function freshPage(initScript) {
  const context = await browser.newContext();
  if (initScript) await context.addInitScript(initScript);
  return { context, page: await openApp(context, server.origin) };
}

/** Proof times with the key a page makes; `withoutEd25519` plays a browser without it. */
async function proofTimes(forceWasmKeys, initScript) {
  const { context, page } = await freshPage(initScript);
  const result = await page.evaluate(
    async ({ forceWasmKeys, count }) => {
      await start({ storageName: `bench-${forceWasmKeys}`, forceWasmKeys, allowedOrigins: ["https://api.example"] });
      const url = "https://api.example/orders/42";
      const token = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
      for (let i = 0; i < 50; i++) await kb.createProof("GET", url, { accessToken: token });
      const times = [];
      for (let i = 0; i < count; i++) {
        const t0 = performance.now();
        await kb.createProof("GET", url, { accessToken: token });
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return {
        keyKind: kb.keyKind,
        isolated: crossOriginIsolated,
        median: times[Math.floor(times.length / 2)],
        p95: times[Math.floor(times.length * 0.95)],
      };
    },
    { forceWasmKeys, count: PROOFS },
  );
  await context.close();
  return result;
}

/**
 * Page start to the first signed request: module import (the bundle), `Keybound.init`
 * (the wasm module's download and compile, IndexedDB, the key), one proof. `download`:
 * from `init` to the module's last byte (resource timing), the part of `init` the
 * server and network take; `rest`: from that byte to the end of `init` (compile, and
 * what the SDK does that the download did not hide).
 */
async function initToFirstProof(context, page, storageName, entry = "/__kb/pkg/keybound.js") {
  return page.evaluate(async ({ storageName, entry }) => {
    const t0 = performance.now();
    const { Keybound } = await import(`${entry}?fresh=${Math.random()}`);
    const t1 = performance.now();
    const kb = await Keybound.init({ storageName });
    const t2 = performance.now();
    await kb.createProof("GET", location.href);
    const t3 = performance.now();
    const wasm = performance.getEntriesByType("resource").find((r) => r.name.endsWith(".wasm") && r.startTime >= t1);
    performance.clearResourceTimings();
    const download = wasm ? wasm.responseEnd - t1 : NaN;
    const rest = t2 - t1 - download;
    return { import: t1 - t0, init: t2 - t1, download, rest, proof: t3 - t2, total: t3 - t0, keyKind: kb.keyKind };
  }, { storageName, entry });
}

const webcrypto = await proofTimes(false);
const p256 = await proofTimes(false, withoutEd25519);
const wasm = await proofTimes(true);

async function startRun(i, entry) {
  const { context, page } = await freshPage();
  const cold = await initToFirstProof(context, page, `start-${i}`, entry);
  await page.reload();
  await page.waitForFunction(() => window.ready === true);
  const warm = await initToFirstProof(context, page, `start-${i}`, entry);
  await context.close();
  return { cold, warm };
}

const RUNS = Number(process.env.BENCH_STARTS ?? 5);
const starts = [];
const beforeStarts = [];
for (let i = 0; i < RUNS; i++) {
  starts.push(await startRun(i, undefined));
  if (beforeEntry) beforeStarts.push(await startRun(i, beforeEntry));
}
await browser.close();
await server.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(3)} ms`;
const kb = (n) => `${n} B (${(n / 1024).toFixed(1)} KiB)`;

console.log("| measure | result | goal |");
console.log("|---|---|---|");
for (const f of files) console.log(`| \`js/${f}\` | ${sizes[f].raw} B raw, ${kb(sizes[f].gzip)} gzip -9 | |`);
console.log(`| **start: wasm + JS, gzip -9** | **${kb(totalGzip)}** | ≤ 20 KB |`);
console.log(`| fallback signer (only with forceWasmKeys), gzip -9 | ${kb(fallbackGzip)} | |`);
console.log(`| proof, WebCrypto key, median of ${PROOFS} (p95) | ${ms(webcrypto.median)} (${ms(webcrypto.p95)}) | ≤ 0.3 ms |`);
console.log(`| proof, WebCrypto P-256 key (${p256.keyKind}), median of ${PROOFS} (p95) | ${ms(p256.median)} (${ms(p256.p95)}) | ≤ 0.3 ms |`);
console.log(`| proof, wasm key, median of ${PROOFS} (p95) | ${ms(wasm.median)} (${ms(wasm.p95)}) | ≤ 0.5 ms |`);
for (const [runs, which] of [[starts, ""], [beforeStarts, " (before)"]]) {
  if (!runs.length) continue;
  for (const [visit, label] of [
    ["cold", "first visit (database and key created)"],
    ["warm", "returning visit (key loaded)"],
  ]) {
    const part = (name) => ms(median(runs.map((s) => s[visit][name])));
    console.log(
      `| init → first signed request${which}, ${label}, median of ${runs.length} | ${part("total")} (import ${part("import")}, init ${part("init")}: module download ${part("download")}, then ${part("rest")}; proof ${part("proof")}) | ${visit === "cold" ? "≤ 50 ms" : "≤ 25 ms"} |`,
    );
  }
}
console.log();
console.log(
  JSON.stringify({ sizes, totalGzip, webcrypto, wasm, starts, isolated: webcrypto.isolated }, null, 1)
    .split("\n")
    .slice(0, 3)
    .join(" "),
);
console.log(`load average (1 min): ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`);
console.log(`timer resolution: ${webcrypto.isolated ? "cross-origin isolated (5 µs)" : "coarse (100 µs)"}`);
