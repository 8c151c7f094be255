// The SDK's download, as a page fetches it: `gzip -9` bytes of every file loaded
// before `Keybound.init()` resolves ("start", the same files with a WebCrypto Ed25519 or
// P-256 key), and of the fallback signer fetched only with forceWasmKeys ("fallback").
//   node js/size.mjs          prints both, and fails when start exceeds js/size-budget.json
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const JS = path.dirname(fileURLToPath(import.meta.url));

export const START = ["pkg/keybound.js", "pkg/keybound_client_bg.wasm"];
export const FALLBACK = [
  ...readdirSync(path.join(JS, "pkg"))
    .filter((f) => /^keybound_fallback-.*\.js$/.test(f))
    .map((f) => `pkg/${f}`),
  "pkg/keybound_fallback_bg.wasm",
];

/** `{file: {raw, gzip}}` with `gzip -9` (the command-line tool, as the budget is defined). */
export function sizes(files) {
  return Object.fromEntries(
    files.map((file) => {
      const full = path.join(JS, file);
      return [file, { raw: readFileSync(full).length, gzip: execFileSync("gzip", ["-9", "-c", full]).length }];
    }),
  );
}

export const total = (measured) => Object.values(measured).reduce((sum, s) => sum + s.gzip, 0);

/** The recorded ceiling for the start bytes (it may only go down). */
export const budget = () => JSON.parse(readFileSync(path.join(JS, "size-budget.json"), "utf8")).startGzipBytes;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const start = sizes(START);
  const fallback = sizes(FALLBACK);
  for (const [file, s] of Object.entries({ ...start, ...fallback })) {
    console.log(`  ${file.padEnd(32)} ${String(s.raw).padStart(7)} B raw ${String(s.gzip).padStart(7)} B gzip -9`);
  }
  const limit = budget();
  console.log(`keybound: start ${total(start)} B gzip -9 (budget ${limit} B), fallback ${total(fallback)} B gzip -9`);
  if (total(start) > limit) {
    console.error(`keybound: the start bytes exceed the budget in js/size-budget.json (${limit} B)`);
    process.exit(1);
  }
}
