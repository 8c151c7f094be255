// Records what this machine's Chromium really sends and does in DBSC (Device Bound
// Session Credentials), against a scripted recording server, and writes it to
// tests/vectors/dbsc/chromium.json (the regression vectors of keybound's DBSC parsers).
//
//   node tests/browser/dbsc-capture.mjs [output.json]
//
// Run by hand when a new Chromium is to be checked; the output is reviewed and
// committed. Each scenario is one fresh browser context (one device) against a fresh
// server script; every request the server sees and every answer it gives is recorded,
// with the DevTools DBSC events. The answers are fixed strings chosen by the scenario,
// so the recorded JWTs only vary by the browser's key and signature.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { decodeJws, launchDbsc, makeCertificate, watchDbsc } from "./lib/dbsc.mjs";
import { ROOT, sleep } from "./lib/harness.mjs";

const OUTPUT = process.argv[2] ?? path.join(ROOT, "tests/vectors/dbsc/chromium.json");
const COOKIE = "kb_dbsc";
const COOKIE_ATTRIBUTES = "Path=/; Secure; HttpOnly; SameSite=Lax";
// Headers that say nothing about DBSC and change with every run or machine.
const NOISE = new Set(["host", "user-agent", "accept-language", "accept-encoding", "connection", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"]);

/** The session configuration a scripted server answers with. */
function config(id) {
  return {
    session_identifier: id,
    refresh_url: "/dbsc/refresh",
    scope: { include_site: false, scope_specification: [] },
    credentials: [{ type: "cookie", name: COOKIE, attributes: COOKIE_ATTRIBUTES }],
  };
}

const cookie = (value, maxAge) => `${COOKIE}=${value}; Max-Age=${maxAge}; ${COOKIE_ATTRIBUTES}`;

/**
 * Scenarios: `sign_in` answers the page load that starts registration; `answer(req,
 * step)` answers /dbsc/* requests (`step` counts them); `drive(page, ctx)` runs the
 * browser after sign-in.
 */
const SCENARIOS = [
  {
    name: "es256_register_refresh",
    what: "ES256 preferred: registration with authorization; the short cookie makes Chromium refresh at once without a challenge (403 + challenge), then with the signed challenge; the refresh answer caches the next challenge, which the next refresh signs directly.",
    registration: '(ES256 RS256);path="/dbsc/register";challenge="kb-reg-es256";authorization="kb-auth-es256"',
    answer(req, step) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 5) }, body: JSON.stringify(config("kb-sess-es256")) };
      if (!req.headers["secure-session-response"])
        return { status: 403, headers: { "secure-session-challenge": `"kb-refresh-${step}";id="kb-sess-es256"` }, body: "" };
      return {
        status: 200,
        headers: { "content-type": "application/json", "set-cookie": cookie(`refreshed-${step}`, 600), "secure-session-challenge": `"kb-cached-${step}";id="kb-sess-es256"` },
        body: JSON.stringify(config("kb-sess-es256")),
      };
    },
    async drive(page, ctx, origin) {
      await sleep(2000);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
    },
  },
  {
    name: "rs256_register_refresh",
    what: "RS256 only, no authorization: registration, then a refresh through 403 + challenge.",
    registration: '(RS256);path="/dbsc/register";challenge="kb-reg-rs256"',
    answer(req, step) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 600) }, body: JSON.stringify(config("kb-sess-rs256")) };
      if (!req.headers["secure-session-response"])
        return { status: 403, headers: { "secure-session-challenge": `"kb-refresh-${step}";id="kb-sess-rs256"` }, body: "" };
      return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie(`refreshed-${step}`, 600) }, body: JSON.stringify(config("kb-sess-rs256")) };
    },
    async drive(page, ctx, origin) {
      await sleep(1500);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
    },
  },
  {
    name: "continue_false",
    what: 'The refresh answers {"session_identifier":…,"continue":false} and clears the cookie: Chromium ends the session (ServerRequested) and sends the page request without a cookie.',
    registration: '(ES256);path="/dbsc/register";challenge="kb-reg-end"',
    answer(req) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 600) }, body: JSON.stringify(config("kb-sess-end")) };
      return { status: 200, headers: { "content-type": "application/json", "set-cookie": `${COOKIE}=; Max-Age=0; ${COOKIE_ATTRIBUTES}` }, body: JSON.stringify({ session_identifier: "kb-sess-end", continue: false }) };
    },
    async drive(page, ctx, origin) {
      await sleep(1500);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
      await page.goto(`${origin}/app/after-termination`);
    },
  },
  {
    name: "continue_false_without_id",
    what: 'The refresh answers {"continue":false} without session_identifier: Chromium reports InvalidSessionId and still ends the session (InvalidSessionParams).',
    registration: '(ES256);path="/dbsc/register";challenge="kb-reg-end2"',
    answer(req) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 600) }, body: JSON.stringify(config("kb-sess-end2")) };
      return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify({ continue: false }) };
    },
    async drive(page, ctx, origin) {
      await sleep(1500);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
    },
  },
  {
    name: "refresh_always_challenged",
    what: "Every refresh answered 403 + a new challenge: Chromium tries once unsigned and four times signed, then gives up (TooManyChallenges) and ends the session.",
    registration: '(ES256);path="/dbsc/register";challenge="kb-reg-loop"',
    answer(req, step) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 600) }, body: JSON.stringify(config("kb-sess-loop")) };
      return { status: 403, headers: { "secure-session-challenge": `"kb-loop-${step}";id="kb-sess-loop"` }, body: "" };
    },
    async drive(page, ctx, origin) {
      await sleep(1500);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
    },
  },
  {
    name: "refresh_unauthorized",
    what: "A signed refresh answered 401: Chromium ends the session (PersistentHttpError, RefreshFatalError).",
    registration: '(ES256);path="/dbsc/register";challenge="kb-reg-401"',
    answer(req, step) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 600) }, body: JSON.stringify(config("kb-sess-401")) };
      if (!req.headers["secure-session-response"])
        return { status: 403, headers: { "secure-session-challenge": `"kb-refresh-${step}";id="kb-sess-401"` }, body: "" };
      return { status: 401, headers: { "content-type": "application/json" }, body: '{"error":"invalid_grant"}' };
    },
    async drive(page, ctx, origin) {
      await sleep(1500);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
    },
  },
  {
    name: "challenge_without_id",
    what: 'A 403 whose Secure-Session-Challenge has no id parameter: Chromium ignores the challenge (NoSessionId) and ends the session (InvalidChallenge).',
    registration: '(ES256);path="/dbsc/register";challenge="kb-reg-noid"',
    answer(req, step) {
      if (req.path === "/dbsc/register")
        return { status: 200, headers: { "content-type": "application/json", "set-cookie": cookie("registered", 600) }, body: JSON.stringify(config("kb-sess-noid")) };
      return { status: 403, headers: { "secure-session-challenge": `"kb-refresh-${step}"` }, body: "" };
    },
    async drive(page, ctx, origin) {
      await sleep(1500);
      await ctx.clearCookies();
      await page.goto(`${origin}/app/after-cookie-loss`);
    },
  },
  {
    name: "registration_challenged",
    what: "The registration answered 403 + a challenge: Chromium 156 does not retry a registration (RegistrationAttemptedChallenge); no session.",
    registration: '(ES256);path="/dbsc/register";challenge="kb-reg-403"',
    answer() {
      return { status: 403, headers: { "secure-session-challenge": '"kb-reg-again"' }, body: "" };
    },
    async drive() {
      await sleep(1500);
    },
  },
  {
    name: "registration_without_challenge",
    what: "A registration header without challenge: Chromium POSTs to the registration path without any Secure-Session-Response (nothing proves a key).",
    registration: '(ES256);path="/dbsc/register"',
    answer() {
      return { status: 400, headers: { "content-type": "application/json" }, body: '{"error":"missing_response"}' };
    },
    async drive() {
      await sleep(1500);
    },
  },
  ...[
    ["header_bare_token", "ES256;path=\"/dbsc/register\";challenge=\"kb-bare\"", "algorithms not in an inner list"],
    ["header_path_token", "(ES256);path=/dbsc/register;challenge=\"kb-tok\"", "path not a quoted string (not a valid structured field)"],
    ["header_challenge_token", "(ES256);path=\"/dbsc/register\";challenge=kbtoken", "challenge as a token instead of a string"],
    ["header_eddsa_only", "(EdDSA);path=\"/dbsc/register\";challenge=\"kb-eddsa\"", "only an algorithm Chromium does not offer"],
  ].map(([name, registration, why]) => ({
    name,
    what: `Registration header with ${why}: Chromium ignores it (no POST).`,
    registration,
    answer() {
      return { status: 500, headers: {}, body: "" };
    },
    async drive() {
      await sleep(1500);
    },
  })),
];

function startRecorder(tls, scenario, exchanges) {
  let step = 0;
  const server = https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const url = new URL(req.url, "https://recorder");
      const headers = {};
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i].toLowerCase();
        if (!NOISE.has(name)) headers[name] = req.rawHeaders[i + 1];
      }
      const request = { method: req.method, path: url.pathname, headers, body };
      let answer;
      if (url.pathname === "/sign-in") {
        answer = { status: 200, headers: { "content-type": "text/html", "secure-session-registration": scenario.registration }, body: "<p>signed in</p>" };
      } else if (url.pathname.startsWith("/dbsc/")) {
        step += 1;
        answer = scenario.answer(request, step);
      } else if (url.pathname === "/favicon.ico") {
        res.writeHead(404).end();
        return;
      } else {
        answer = { status: 200, headers: { "content-type": "text/plain" }, body: "page" };
      }
      exchanges.push({ request, response: answer });
      res.writeHead(answer.status, answer.headers).end(answer.body);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Decodes every `secure-session-response` JWT next to its raw text. */
function annotate(exchanges) {
  for (const { request } of exchanges) {
    const jwt = request.headers["secure-session-response"];
    if (jwt) request.decoded_response = decodeJws(jwt);
  }
  return exchanges;
}

/** DevTools events without their random ids and the port-bearing URLs reduced. */
function tidy(events, origin) {
  return JSON.parse(JSON.stringify(events, (key, value) => (key === "eventId" ? undefined : value)).replaceAll(origin, "https://localhost:PORT"));
}

const tls = await makeCertificate();
const browser = await launchDbsc(tls.spki);
const results = [];
try {
  for (const scenario of SCENARIOS) {
    const exchanges = [];
    const server = await startRecorder(tls, scenario, exchanges);
    const origin = `https://localhost:${server.address().port}`;
    const context = await browser.newContext();
    const page = await context.newPage();
    const dbsc = await watchDbsc(page);
    await page.goto(`${origin}/sign-in`);
    await scenario.drive(page, context, origin);
    await sleep(500);
    await context.close();
    server.close();
    const text = JSON.stringify(annotate(exchanges)).replaceAll(origin, "https://localhost:PORT");
    results.push({ name: scenario.name, description: scenario.what, registration_header: scenario.registration, exchanges: JSON.parse(text), events: tidy(dbsc.events, origin) });
    console.log(`${scenario.name}: ${exchanges.length} requests, events ${dbsc.kinds().join(" ")}`);
  }
} finally {
  await browser.close();
  await tls.remove();
}

const version = execFileSync(process.env.CHROMIUM ?? "/usr/bin/chromium", ["--version"], { encoding: "utf8" }).trim();
const sorted = (value) =>
  Array.isArray(value)
    ? value.map(sorted)
    : value && typeof value === "object"
      ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]))
      : value;
writeFileSync(
  OUTPUT,
  `${JSON.stringify(sorted({ browser: version, captured_by: "tests/browser/dbsc-capture.mjs", scenarios: results }), null, 2)}\n`,
);
console.log(`wrote ${OUTPUT}`);
