// keybound: device-bound browser sessions (DPoP with a non-extractable WebCrypto key).
// The decisions live in the WebAssembly engine; the driver carries them out with the
// browser's APIs; this file gives them a JavaScript face: an EventTarget, an Error
// class with stable codes, and friendly shapes.
import initModule from "./glue/keybound_client.js";
import { Driver } from "./driver.js";
import { KeyboundError } from "./error.js";
import { Storage } from "./store.js";

export { KeyboundError };

let loading = null;

function load(source) {
  // Without a source, the module's file beside this one.
  loading ??= initModule({ module_or_path: source }).catch((e) => {
    loading = null;
    throw e;
  });
  return loading;
}

const token = Symbol("keybound");
const OPTIONS = ["endpoint", "allowedOrigins", "storageName", "expiringLeadSeconds", "forceWasmKeys", "wasm"];

/** The settings of `Keybound.init(options)`, checked; the endpoint made absolute. */
function settings(options) {
  const invalid = (reason) => new KeyboundError("invalid_option", `invalid option: ${reason}`);
  if (options === null || typeof options !== "object") throw invalid("options must be an object");
  const unknown = Object.keys(options).find((key) => !OPTIONS.includes(key));
  if (unknown !== undefined) throw invalid(`unknown option "${unknown}"`);
  // An option's value (`fallback` when not given), or the error saying which rule it broke.
  const value = (key, fallback, valid, rule) => {
    const v = options[key] ?? fallback;
    if (!valid(v)) throw invalid(`${key} ${rule}`);
    return v;
  };
  const endpoint = value("endpoint", "/session", (v) => typeof v === "string", "must be a string");
  let url;
  try {
    url = new URL(endpoint, globalThis.location?.href);
  } catch {
    throw invalid("endpoint is not a valid URL");
  }
  url.search = "";
  url.hash = "";
  const storageName = value(
    "storageName",
    "keybound",
    (v) => typeof v === "string" && v && v.length <= 100,
    "must be a non-empty string",
  );
  const lead = value(
    "expiringLeadSeconds",
    120,
    (v) => typeof v === "number" && v >= 0 && v <= 86400,
    "must be a number of seconds between 0 and 86400",
  );
  const forceWasmKeys = value("forceWasmKeys", false, (v) => typeof v === "boolean", "must be a boolean");
  // Each entry is written as the browser's URL parser writes it, then checked by the
  // engine (an http(s) origin, nothing more).
  const allowedOrigins = value("allowedOrigins", [], Array.isArray, "must be an array of origins");
  const origins = allowedOrigins.map((origin) => {
    try {
      return new URL(origin).href;
    } catch {
      return String(origin);
    }
  });
  return { endpoint: url.href, allowedOrigins: origins, storageName, expiringLeadSeconds: lead, forceWasmKeys };
}

function toDate(value) {
  const date = new Date(typeof value === "number" ? value * 1000 : (value ?? NaN));
  return isNaN(date) ? null : date;
}

function sessionSummary(raw) {
  return {
    id: String(raw.id),
    createdAt: toDate(raw.created_at),
    lastSeenAt: toDate(raw.last_seen_at),
    idleExpiresAt: toDate(raw.idle_expires_at),
    expiresAt: toDate(raw.expires_at),
    deviceLabel: raw.device_label ?? null,
    state: raw.state,
    reason: raw.reason ?? null,
    endedAt: toDate(raw.ended_at),
    current: raw.current === true,
    binding: raw.binding ?? "dpop",
  };
}

/** A keybound session client. Create it with `await Keybound.init(options)`. */
export class Keybound extends EventTarget {
  #driver;

  constructor(key, driver) {
    super();
    if (key !== token) throw new TypeError("use Keybound.init(options)");
    this.#driver = driver;
  }

  /** Loads the module, opens the key store and resumes a stored session. */
  static async init(options = {}) {
    const config = settings(options);
    // The database opens, its records are read and, on a first visit, a WebCrypto
    // Ed25519 key is made (the engine's first choice unless forceWasmKeys; it decides
    // once loaded) while the module compiles.
    const opening = Storage.open(config.storageName, config.forceWasmKeys ? null : "webcrypto");
    opening.catch(() => {});
    await load(options.wasm);
    let kb = null;
    const pending = [];
    const emit = (type, detail) => {
      const event = new CustomEvent(type, { detail });
      if (kb) kb.dispatchEvent(event);
      else pending.push(event);
    };
    const driver = await Driver.create(config, emit, opening);
    kb = new Keybound(token, driver);
    // Events raised while starting (a resumed session about to expire) reach the
    // listeners the app adds right after `await Keybound.init()`.
    if (pending.length) setTimeout(() => pending.forEach((event) => kb.dispatchEvent(event)), 0);
    return kb;
  }

  #run(method, ...args) {
    if (this.#driver.disposed) {
      return Promise.reject(new KeyboundError("disposed", "this Keybound instance was disposed"));
    }
    return this.#driver[method](...args);
  }

  /** `"anonymous" | "active" | "expired" | "revoked" | "closed"` */
  get state() {
    return this.#driver.engine.state();
  }

  /** The device key's RFC 7638 thumbprint (`null` after logout until the next login). */
  get thumbprint() {
    return this.#driver.engine.thumbprint() ?? null;
  }

  /** `"webcrypto"` (Ed25519), `"webcrypto-p256"` or `"wasm"` (`null` when there is no key). */
  get keyKind() {
    return this.#driver.engine.key_kind() ?? null;
  }

  /** The live session's id and deadlines (local epoch milliseconds), or `null`. */
  get session() {
    return this.#driver.info();
  }

  /** `false` when this browser gave no storage: key and session live in this tab only. */
  get persistent() {
    return this.#driver.persistent;
  }

  login(url, init) {
    return this.#run("login", String(url), init);
  }

  fetch(input, init) {
    return this.#run("fetch", input, init);
  }

  extend() {
    return this.#run("extend");
  }

  touch() {
    if (!this.#driver.disposed) this.#driver.touch();
  }

  async sessions() {
    const list = await this.#run("sessions");
    return list.map(sessionSummary);
  }

  async sessionPage(options = {}) {
    const page = await this.#run("sessionPage", options?.limit, options?.cursor ?? undefined);
    return { sessions: page.sessions.map(sessionSummary), nextCursor: page.nextCursor };
  }

  async revokeSession(id) {
    await this.#run("revokeSession", String(id));
  }

  revokeOthers() {
    return this.#run("revokeOthers");
  }

  rotate(url, init) {
    return this.#run("rotate", String(url), init);
  }

  logout() {
    return this.#run("logout");
  }

  createProof(method, url, options = {}) {
    return this.#run("createProof", String(method), String(url), options.accessToken, options.nonce);
  }

  dispose() {
    this.#driver.dispose();
  }
}

export default Keybound;
