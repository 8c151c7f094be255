// Browser SDK budgets: download size, proof generation time, time to the first signed
// request. Prints a Markdown table for BENCHMARKS.md.
//   (cd tests/browser && node bench.mjs)        after js/build.sh
import { readFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { JS_DIR, SDK_MISSING, launch, openApp, sdkBuilt, serveFiles } from "./lib/harness.mjs";

if (!sdkBuilt) {
  console.error(SDK_MISSING);
  process.exit(1);
}

const ORIGIN = "http://localhost:47814";
const PROOFS = 1000;

async function gz(file) {
  const bytes = await readFile(path.join(JS_DIR, file));
  return { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
}

const files = ["pkg/keybound_client_bg.wasm", "pkg/keybound_client.js", "index.js"];
const sizes = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await gz(f)])));
const totalGzip = Object.values(sizes).reduce((sum, s) => sum + s.gzip, 0);

const browser = await launch();
// Cross-origin isolation gives performance.now() microsecond resolution.
const isolation = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
};

async function freshPage() {
  const context = await browser.newContext();
  await serveFiles(context, ORIGIN, { headers: isolation });
  return { context, page: await openApp(context, ORIGIN) };
}

async function proofTimes(forceWasmKeys) {
  const { context, page } = await freshPage();
  const result = await page.evaluate(
    async ({ forceWasmKeys, count }) => {
      await start({ storageName: `bench-${forceWasmKeys}`, forceWasmKeys });
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

/** Page start to the first signed request: module import, init, one proof. */
async function initToFirstProof(context, page, storageName) {
  return page.evaluate(async (storageName) => {
    const t0 = performance.now();
    const { Keybound } = await import(`/__kb/index.js?fresh=${Math.random()}`);
    const kb = await Keybound.init({ storageName });
    const t1 = performance.now();
    await kb.createProof("GET", location.href);
    const t2 = performance.now();
    return { init: t1 - t0, total: t2 - t0, keyKind: kb.keyKind };
  }, storageName);
}

const webcrypto = await proofTimes(false);
const wasm = await proofTimes(true);

const starts = [];
for (let i = 0; i < 5; i++) {
  const { context, page } = await freshPage();
  const cold = await initToFirstProof(context, page, `start-${i}`);
  await page.reload();
  await page.waitForFunction(() => window.ready === true);
  const warm = await initToFirstProof(context, page, `start-${i}`);
  starts.push({ cold, warm });
  await context.close();
}
await browser.close();

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(3)} ms`;
const kb = (n) => `${n} B (${(n / 1024).toFixed(1)} KiB)`;

console.log("| measure | result | goal |");
console.log("|---|---|---|");
for (const f of files) console.log(`| \`js/${f}\` | ${sizes[f].raw} B raw, ${kb(sizes[f].gzip)} gzip -9 | |`);
console.log(`| **download, wasm + JS, gzip -9** | **${kb(totalGzip)}** | ≤ 45 KB |`);
console.log(`| proof, WebCrypto key, median of ${PROOFS} (p95) | ${ms(webcrypto.median)} (${ms(webcrypto.p95)}) | ≤ 0.3 ms |`);
console.log(`| proof, wasm key, median of ${PROOFS} (p95) | ${ms(wasm.median)} (${ms(wasm.p95)}) | ≤ 0.5 ms |`);
console.log(
  `| page → first signed request, first visit (key created), median of 5 | ${ms(median(starts.map((s) => s.cold.total)))} | ≤ 50 ms |`,
);
console.log(
  `| page → first signed request, returning visit (key loaded), median of 5 | ${ms(median(starts.map((s) => s.warm.total)))} | ≤ 50 ms |`,
);
console.log();
console.log(
  JSON.stringify({ sizes, totalGzip, webcrypto, wasm, starts, isolated: webcrypto.isolated }, null, 1)
    .split("\n")
    .slice(0, 3)
    .join(" "),
);
console.log(`timer resolution: ${webcrypto.isolated ? "cross-origin isolated (5 µs)" : "coarse (100 µs)"}`);
