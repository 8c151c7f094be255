// keybound: device-bound browser sessions (DPoP with a non-extractable Ed25519 key).
// The logic lives in the WebAssembly module; this file gives it a JavaScript face:
// an EventTarget, an Error class with stable codes, and friendly shapes.
import initModule, { Core } from "./pkg/keybound_client.js";

let loading = null;

function load(source) {
  if (!loading) {
    loading = initModule(source === undefined ? undefined : { module_or_path: source }).catch((e) => {
      loading = null;
      throw e;
    });
  }
  return loading;
}

/** An error from keybound; `code` is stable (`network_error`, `session_revoked`, the server's `error_code`, …). */
export class KeyboundError extends Error {
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KeyboundError";
    this.code = code;
    this.status = options.status;
  }
}

const token = Symbol("keybound");
const OPTIONS = ["endpoint", "storageName", "expiringLeadSeconds", "forceWasmKeys", "wasm"];

function toDate(value) {
  if (value === null || value === undefined) return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
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
  };
}

/** A keybound session client. Create it with `await Keybound.init(options)`. */
export class Keybound extends EventTarget {
  #core;

  constructor(key, core) {
    super();
    if (key !== token) throw new TypeError("use Keybound.init(options)");
    this.#core = core;
  }

  /** Loads the module, opens the key store and resumes a stored session. */
  static async init(options = {}) {
    if (options === null || typeof options !== "object") {
      throw new KeyboundError("invalid_option", "options must be an object");
    }
    const unknown = Object.keys(options).find((key) => !OPTIONS.includes(key));
    if (unknown !== undefined) {
      throw new KeyboundError("invalid_option", `unknown option "${unknown}"`);
    }
    await load(options.wasm);
    let kb = null;
    const pending = [];
    const hooks = {
      emit(type, detail) {
        const event = new CustomEvent(type, { detail });
        if (kb) kb.dispatchEvent(event);
        else pending.push(event);
      },
      error(code, message, status) {
        return new KeyboundError(code, message, { status });
      },
    };
    const { wasm, ...settings } = options;
    const core = await Core.create(settings, hooks);
    kb = new Keybound(token, core);
    // Events raised while starting (a resumed session about to expire) reach the
    // listeners the app adds right after `await Keybound.init()`.
    if (pending.length) setTimeout(() => pending.forEach((event) => kb.dispatchEvent(event)), 0);
    return kb;
  }

  /** `"anonymous" | "active" | "expired" | "revoked" | "closed"` */
  get state() {
    return this.#core.state;
  }

  /** The device key's RFC 7638 thumbprint (`null` after logout until the next login). */
  get thumbprint() {
    return this.#core.thumbprint ?? null;
  }

  /** `"webcrypto"` or `"wasm"` (`null` when there is no key). */
  get keyKind() {
    return this.#core.keyKind ?? null;
  }

  /** The live session's id and deadlines (local epoch milliseconds), or `null`. */
  get session() {
    return this.#core.session ?? null;
  }

  login(url, init) {
    return this.#core.login(String(url), init);
  }

  fetch(input, init) {
    return this.#core.fetch(input instanceof URL ? input.href : input, init);
  }

  extend() {
    return this.#core.extend();
  }

  touch() {
    this.#core.touch();
  }

  async sessions() {
    const list = await this.#core.sessions();
    return list.map(sessionSummary);
  }

  async revokeSession(id) {
    await this.#core.revokeSession(String(id));
  }

  revokeOthers() {
    return this.#core.revokeOthers();
  }

  rotate(url, init) {
    return this.#core.rotate(url instanceof URL ? url.href : String(url), init);
  }

  logout() {
    return this.#core.logout();
  }

  createProof(method, url, options = {}) {
    return this.#core.createProof(String(method), String(url), options.accessToken, options.nonce);
  }

  dispose() {
    this.#core.dispose();
  }
}

export default Keybound;
