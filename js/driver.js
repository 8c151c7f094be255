// The driver: carries out the engine's decisions with the browser's effects (fetch,
// storage, WebCrypto, Web Locks, BroadcastChannel, timers) and tells the engine what
// happened. It decides nothing about the session itself: which key to make, what an
// answer means, when to retry, refresh, warn or expire is the engine's (Rust) call.
import { KeyboundError, describe, engineError } from "./error.js";
import { engine as makeEngine } from "./engine.js";
import { Storage, b64url } from "./store.js";

// Exchange kinds and answer steps, as the engine numbers them (answer.rs, exchange.rs).
const RESOURCE = 0;
const INTERNAL = 1;
const LOGIN = 2;
const ROTATE = 3;
const REFRESH = 4;
const [TAKE_TOKENS, DELIVER, RETRY, REFRESH_THEN_RETRY, ENDED] = [0, 1, 2, 3, 4];
const TERMINALS = ["", "expired", "revoked", "closed"];
const NEW_SESSION = 2;

const now = () => Date.now();
const text = (value) => (typeof value === "string" ? value : undefined);
const number = (value) => (typeof value === "number" ? value : NaN);
const invalidInput = (error) => new KeyboundError("invalid_input", `invalid request: ${describe(error)}`, { cause: error });

/**
 * The `htu` the engine signs for `url`: the browser's own parse, as `fetch` sends it
 * (lower-case scheme and host, no default port, the path without query or fragment).
 */
function htu(url) {
  let parsed;
  try {
    parsed = new URL(url, globalThis.location?.href);
  } catch (error) {
    throw new KeyboundError("invalid_url", `invalid URL: ${describe(error)}`, { cause: error });
  }
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/** base64url(SHA-256(`text`)), by WebCrypto: the `ath` of a token, the thumbprint of a JWK. */
async function sha256(text) {
  return b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}

/** Runs `work` holding the origin-wide lock `name`; unguarded without Web Locks. */
function withLock(name, work) {
  const locks = globalThis.navigator?.locks;
  return locks ? locks.request(name, () => work()) : work();
}

/** A request the SDK makes itself (refresh, logout, session management). */
function internal(method, url, body) {
  const init = { method, cache: "no-store" };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = body;
  }
  return new Request(url, init);
}

/** The app's `init`, with `POST` by default and a string body sent as JSON. */
function appRequest(url, init) {
  try {
    const options = init !== null && typeof init === "object" ? { ...init } : {};
    if (options.method === undefined) options.method = "POST";
    const headers = new Headers(options.headers);
    if (typeof options.body === "string" && !headers.has("Content-Type")) {
      headers.set("Content-Type", "application/json");
    }
    options.headers = headers;
    return new Request(url, options);
  } catch (error) {
    throw invalidInput(error);
  }
}

/** Sends `request` and reads what the engine needs from the answer. */
async function send(request) {
  const sent = now();
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    throw error?.name === "AbortError"
      ? new KeyboundError("aborted", "the request was aborted", { cause: error })
      : new KeyboundError("network_error", `network error: ${describe(error)}`, { cause: error });
  }
  const header = (name) => response.headers.get(name) ?? undefined;
  const reply = {
    response,
    sent,
    received: now(),
    nonce: header("DPoP-Nonce"),
    date: header("Date"),
    retryAfter: header("Retry-After"),
  };
  if ([400, 401, 403, 429].includes(response.status)) {
    reply.challenge = header("WWW-Authenticate");
    if (header("Content-Type")?.includes("json")) {
      // A clone, so the caller can still read the body.
      const body = await response.clone().json().catch(() => null);
      reply.error = text(body?.error);
      reply.code = text(body?.error_code);
      reply.description = text(body?.error_description);
    }
  }
  return reply;
}

/** The session client behind one `Keybound` object. */
export class Driver {
  /**
   * Opens the storage, loads or makes the device key, resumes a stored session and
   * starts listening to other tabs.
   */
  static async create(config, emit, opening = Storage.open(config.storageName)) {
    const engine = makeEngine(config.endpoint, config.expiringLeadSeconds, config.allowedOrigins.join("\n"));
    const problem = engine.take_error();
    if (problem !== undefined) throw engineError(problem);
    const storage = await opening;
    const driver = new Driver(engine, storage, config, emit);
    // Read (and decrypted) while the module compiled.
    const [session, key] = await storage.initial;
    driver.#stageRecord(session);
    if (key) {
      if (!(await driver.#setKey(key))) throw driver.#fail();
      if (engine.keep_key(config.forceWasmKeys)) driver.#signer = key;
      else await storage.deleteKey();
    }
    await driver.#ensureKey(null);
    if (engine.resume(now()) === 2) {
      // It ran out while no page was open: say so once, then forget it.
      await storage.endSession("expired", engine.staged_session_id());
    }
    driver.#listen();
    driver.reschedule();
    return driver;
  }

  #engine;
  #storage;
  #config;
  #emit;
  #signer = null;
  #refreshing = null;
  #timer;
  #channel = null;
  #wake = null;
  #lock;
  disposed = false;

  constructor(engine, storage, config, emit) {
    this.#engine = engine;
    this.#storage = storage;
    this.#config = config;
    this.#emit = emit;
    this.#lock = `keybound:${config.storageName}:session`;
  }

  get engine() {
    return this.#engine;
  }

  get persistent() {
    return this.#storage.persistent;
  }

  // ---- small helpers -----------------------------------------------------------------

  #fail() {
    return engineError(this.#engine.take_error());
  }

  #emitError(error) {
    this.#emit("error", error);
  }

  /** The live session's id and deadlines on this browser's clock, or `null`. */
  info() {
    const id = this.#engine.session_id();
    if (id === undefined) return null;
    const [accessTokenExpiresAt, idleExpiresAt, expiresAt] = this.#engine.deadlines();
    return { id, accessTokenExpiresAt, idleExpiresAt, expiresAt };
  }

  /** Dispatches the events the engine queued. */
  #drain() {
    let renewed = false;
    for (let event; (event = this.#engine.next_event()) !== undefined; ) {
      const [type, a, b] = event.split("\n");
      if (type === "login" || type === "refreshed") {
        renewed = true;
        this.#emit(type, this.info());
      } else if (type === "expiring") {
        this.#emit(type, { secondsLeft: Number(a), reason: b });
      } else {
        this.#emit(type, a ? { sessionId: b || null, reason: a } : { sessionId: b || null });
      }
    }
    if (this.#engine.thumbprint() === undefined) this.#signer = null;
    if (renewed) this.reschedule();
  }

  /** Stages the stored session record in the engine. */
  async #stage() {
    this.#stageRecord(await this.#storage.loadSession());
  }

  #stageRecord(stored) {
    const live = stored.live;
    if (live) {
      if (!this.#engine.stage_live(live.plain, live.sid, live.jkt, live.stamp, live.numbers)) throw this.#fail();
    } else if (stored.ended) {
      this.#engine.stage_ended(stored.ended, stored.sid ?? undefined);
    } else {
      this.#engine.stage_nothing();
    }
  }

  /**
   * The device key's signer; when there is none, the stored key (`key`, `null` for none;
   * read when not given) or a new one.
   */
  async #ensureKey(key = undefined) {
    if (this.#signer && this.#engine.thumbprint() !== undefined) return this.#signer;
    if (key === undefined) key = await this.#storage.loadKey();
    key ??= await this.#storage.createKey(this.#engine.key_kinds(this.#config.forceWasmKeys));
    if (!(await this.#setKey(key))) throw this.#fail();
    return (this.#signer = key);
  }

  /** Gives the engine the device key with its thumbprint (SHA-256 of the engine's JWK). */
  async #setKey(key) {
    const jwk = this.#engine.key_jwk(key.kind, key.x);
    return jwk !== undefined && this.#engine.set_key(key.kind, key.x, await sha256(jwk));
  }

  /** A proof by the device key, built by the engine. */
  async proof(method, url, accessToken, nonce) {
    const signer = await this.#ensureKey();
    const jti = crypto.getRandomValues(new Uint8Array(16));
    const ath = accessToken == null ? undefined : await sha256(accessToken);
    const input = this.#engine.proof_input(method, htu(url), ath, nonce, jti, now());
    if (input === undefined) throw this.#fail();
    const signature = await signer.sign(new TextEncoder().encode(input)).catch((error) => {
      throw new KeyboundError("crypto_error", "crypto operation failed: sign", { cause: error });
    });
    return this.#engine.proof_finish(input, signature);
  }

  // ---- one signed exchange -----------------------------------------------------------

  /** The engine's reading of `reply`, by the origin it came from (after redirects). */
  #answer(kind, budget, url, reply) {
    return this.#engine.answer(
      kind,
      budget,
      reply.response.url || url,
      reply.response.status,
      reply.challenge,
      reply.error,
      reply.code,
      reply.description,
      reply.nonce,
      Date.parse(reply.date),
      reply.retryAfter,
      Date.parse(reply.retryAfter),
      reply.sent,
      reply.received,
    );
  }

  /**
   * Signs and sends `request` (with the access token for the kinds that carry it),
   * and follows the engine's reading of each answer within one retry budget: a nonce
   * challenge, a clock correction and a refused token get one retry each; an ended
   * session is ended everywhere. Resolves to the last reply.
   */
  async #exchange(kind, request) {
    const url = request.url;
    const carriesToken = kind === RESOURCE || kind === INTERNAL || kind === ROTATE;
    for (let budget = 0; ; ) {
      let token;
      if (carriesToken) {
        token = this.#engine.access_token();
        if (token === undefined) throw this.#fail();
      }
      const stamp = this.#engine.stamp();
      let attempt;
      try {
        // Each attempt sends a copy, so the original body stays unread for a retry.
        attempt = request.clone();
        const proof = await this.proof(request.method, url, token);
        if (token !== undefined) attempt.headers.set("Authorization", `DPoP ${token}`);
        attempt.headers.set("DPoP", proof);
      } catch (error) {
        throw error instanceof KeyboundError ? error : invalidInput(error);
      }
      const reply = await send(attempt);
      const result = this.#answer(kind, budget, url, reply);
      budget = result >> 8;
      switch (result & 15) {
        case RETRY:
          continue;
        case REFRESH_THEN_RETRY: {
          const refreshed = await this.refresh(stamp).then(
            () => true,
            () => false,
          );
          if (refreshed) continue;
          // The token retry is spent: the engine now says deliver or fail.
          if ((this.#answer(kind, budget, url, reply) & 15) === DELIVER) return reply;
          throw this.#fail();
        }
        case ENDED: {
          const error = this.#fail();
          const terminal = TERMINALS[(result >> 4) & 15];
          // Refreshes and rotations run under the session lock already.
          if (kind === ROTATE || kind === REFRESH) await this.#endLocked(terminal);
          else await this.end(terminal);
          if (kind === RESOURCE) return reply;
          throw error;
        }
        case TAKE_TOKENS:
        case DELIVER:
          return reply;
        default:
          throw this.#fail();
      }
    }
  }

  /** Before a request with the session: counts as use, refreshes first when due. */
  async #beginRequest() {
    const due = this.#engine.begin_request(now());
    if (due === 0) throw this.#fail();
    if (due === 1) return;
    try {
      await this.refresh(this.#engine.stamp());
    } catch (error) {
      // A transient failure still lets the request go out while the token is valid.
      if (!this.#engine.go_on_after_failed_refresh(error.code ?? "", error.status ?? 0, now())) throw error;
    } finally {
      this.reschedule();
    }
  }

  async #sendSigned(kind, request) {
    await this.#beginRequest();
    const reply = await this.#exchange(kind, request);
    this.reschedule();
    return reply;
  }

  /** Reads a token response, stores and takes up the tokens, tells the other tabs. */
  async #takeTokens(reply) {
    const body = await reply.response.json().catch(() => {
      throw new KeyboundError("invalid_response", "invalid response from the server: body is not JSON");
    });
    const taken = this.#engine.take_response(
      text(body?.access_token),
      text(body?.token_type),
      number(body?.expires_in),
      text(body?.refresh_token),
      text(body?.session_id),
      number(body?.session_expires_at),
      number(body?.idle_expires_at),
      number(body?.server_time),
      reply.sent,
      reply.received,
    );
    if (!taken) throw this.#fail();
    const sid = this.#engine.pending_session_id();
    let stamp;
    try {
      stamp = await this.#storage.saveSession(this.#engine);
    } catch (error) {
      // The server rotated the tokens: keep them in memory regardless, so this tab
      // goes on working; other tabs will ask again.
      this.#emitError(error);
      stamp = b64url(crypto.getRandomValues(new Uint8Array(12)));
    }
    const adopted = this.#engine.adopt_pending(stamp);
    this.#drain();
    this.#broadcast(adopted & NEW_SESSION ? "login" : "sync", null, sid);
  }

  // ---- refresh -----------------------------------------------------------------------

  /**
   * Refreshes once per tab at a time (callers share the promise) and once across tabs
   * (the Web Lock, then the stored record: another tab may have just refreshed).
   * `seen` is the stamp of the tokens found due; `forced` asks the server anyway.
   */
  refresh(seen, forced = false) {
    this.#refreshing ??= withLock(this.#lock, () => this.#refreshLocked(seen, forced)).then(
      () => {
        this.#refreshing = null;
      },
      (error) => {
        this.#refreshing = null;
        error.report = this.#engine.refresh_failed(error.code ?? "", (Math.random() * 2 ** 32) >>> 0, now());
        throw error;
      },
    );
    return this.#refreshing;
  }

  async #refreshLocked(seen, forced) {
    await this.#stage();
    const plan = this.#engine.refresh_plan(seen, forced, now());
    this.#drain();
    if (plan === 0) throw this.#fail();
    if (plan === 1) return;
    const request = internal("POST", this.#engine.url("/refresh"), this.#engine.refresh_body());
    await this.#takeTokens(await this.#exchange(REFRESH, request));
  }

  #backgroundRefresh() {
    this.refresh(this.#engine.stamp())
      .catch((error) => {
        if (error.report) this.#emitError(error);
      })
      .finally(() => this.reschedule());
  }

  // ---- endings -----------------------------------------------------------------------

  /** Ends the session everywhere; the caller holds the session lock. */
  async #endLocked(terminal, reason = 0) {
    const sid = this.#engine.session_id();
    if (sid === undefined) return;
    await this.#storage.endSession(terminal, sid).catch((error) => this.#emitError(error));
    this.#broadcast("ended", terminal, sid);
    this.#engine.end(terminal, reason);
    this.#drain();
  }

  end(terminal, reason = 0) {
    return withLock(this.#lock, () => this.#endLocked(terminal, reason));
  }

  /** The local deadline passed: unless another tab kept the session going, it expired. */
  async #expire(reason) {
    await withLock(this.#lock, async () => {
      await this.#stage().catch(() => this.#engine.stage_nothing());
      if (this.#engine.kept_alive(now())) this.#drain();
      else await this.#endLocked("expired", reason);
    });
    this.reschedule();
  }

  // ---- the timer ---------------------------------------------------------------------

  /** Asks the engine what to do now, does it, and sets the one timer for next time. */
  reschedule() {
    clearTimeout(this.#timer);
    if (this.disposed) return;
    const [action, arg] = this.#engine.tick(now());
    this.#drain();
    if (action === 0 && arg >= 0) this.#timer = setTimeout(() => this.reschedule(), arg);
    else if (action === 1) this.#backgroundRefresh();
    else if (action === 2) this.#expire(arg);
  }

  // ---- other tabs --------------------------------------------------------------------

  #broadcast(kind, state, sid) {
    this.#channel?.postMessage({ kind, state, sid });
  }

  /** Re-reads storage after another tab changed it (or this one woke up). */
  async #reload(keyToo) {
    try {
      if (keyToo || this.#engine.thumbprint() === undefined) {
        const key = await this.#storage.loadKey();
        if (key && (await this.#setKey(key))) this.#signer = key;
      }
      await this.#stage();
      this.#engine.reload();
      this.#drain();
    } catch (error) {
      this.#emitError(error);
    }
    this.reschedule();
  }

  /**
   * Listens to other tabs (only with shared storage: a tab keeping its session in
   * memory has nothing to share), to the tab becoming visible and to the network
   * coming back: timers may have been throttled meanwhile.
   */
  #listen() {
    if (this.#storage.persistent && typeof BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(`keybound:${this.#config.storageName}`);
      this.#channel.onmessage = ({ data }) => {
        const next = this.#engine.on_message(text(data?.kind), text(data?.state), text(data?.sid));
        this.#drain();
        if (next) this.#reload(next === 2);
      };
    }
    this.#wake = () => {
      if (this.#engine.wants_wake(globalThis.document?.visibilityState === "hidden")) this.#reload(false);
    };
    globalThis.document?.addEventListener("visibilitychange", this.#wake);
    globalThis.addEventListener?.("online", this.#wake);
  }

  dispose() {
    this.disposed = true;
    clearTimeout(this.#timer);
    globalThis.document?.removeEventListener("visibilitychange", this.#wake);
    globalThis.removeEventListener?.("online", this.#wake);
    this.#channel?.close();
  }

  // ---- the methods of `Keybound` -----------------------------------------------------

  async login(url, init) {
    await this.#ensureKey();
    const reply = await this.#exchange(LOGIN, appRequest(url, init));
    await withLock(this.#lock, () => this.#takeTokens(reply));
    return this.info();
  }

  async fetch(input, init) {
    let request;
    try {
      request = new Request(input, init);
    } catch (error) {
      throw invalidInput(error);
    }
    return (await this.#sendSigned(RESOURCE, request)).response;
  }

  async extend() {
    if (this.#engine.begin_request(now()) === 0) throw this.#fail();
    await this.refresh(undefined, true);
    this.reschedule();
    return this.info();
  }

  touch() {
    this.#engine.touch(now());
    this.reschedule();
  }

  /** One page of the session list (`limit`, `cursor` as the server takes them). */
  async sessionPage(limit, cursor) {
    const url = new URL(this.#engine.url("/sessions"));
    if (limit !== undefined) url.searchParams.set("limit", limit);
    if (cursor) url.searchParams.set("cursor", cursor);
    const reply = await this.#sendSigned(INTERNAL, internal("GET", url.href));
    const body = await reply.response.json().catch(() => null);
    if (!Array.isArray(body?.sessions)) {
      throw new KeyboundError("invalid_response", "invalid response from the server: sessions is not a list");
    }
    return { sessions: body.sessions, nextCursor: text(body.next_cursor) ?? null };
  }

  /** Every page of the session list. */
  async sessions() {
    const all = [];
    for (let cursor; ; ) {
      const page = await this.sessionPage(200, cursor);
      all.push(...page.sessions);
      if (!page.nextCursor || page.nextCursor === cursor) return all;
      cursor = page.nextCursor;
    }
  }

  async revokeSession(id) {
    await this.#sendSigned(INTERNAL, internal("DELETE", this.#engine.url(`/sessions/${encodeURIComponent(id)}`)));
    if (this.#engine.session_id() === id) await this.end("revoked");
  }

  async revokeOthers() {
    const reply = await this.#sendSigned(INTERNAL, internal("POST", this.#engine.url("/sessions/revoke-others")));
    return reply.response.json().catch(() => undefined);
  }

  /**
   * A sensitive action: the request goes, signed with the session's access token, to
   * a route that replaces the session's tokens, and the token response is taken up.
   * The session lock is held from sending to storing, so no refresh (here or in
   * another tab) presents the refresh token the route just replaced: that would be
   * refresh-token reuse, which revokes the session.
   */
  async rotate(url, init) {
    const request = appRequest(url, init);
    await this.#beginRequest();
    await withLock(this.#lock, async () => this.#takeTokens(await this.#exchange(ROTATE, request)));
    this.reschedule();
    return this.info();
  }

  /** Closes the session on the server (best effort) and forgets key and tokens here. */
  async logout() {
    if (this.#engine.state() === "active") {
      try {
        const reply = await this.#sendSigned(RESOURCE, internal("POST", this.#engine.url("/logout")));
        // An ended session was over anyway; the exchange already said how.
        if (!reply.response.ok && this.#engine.state() === "active") {
          this.#engine.answer_error();
          this.#emitError(this.#fail());
        }
      } catch (error) {
        this.#emitError(error);
      }
    }
    // Whatever the server said, this browser forgets key and tokens: without the key,
    // a session the server still holds can never be used again.
    const sid = this.#engine.session_id();
    await withLock(this.#lock, () => this.#storage.forget(sid)).catch((error) => this.#emitError(error));
    this.#engine.drop_key();
    this.#broadcast("ended", "closed", sid ?? "");
    this.#engine.end("closed", 0);
    this.#drain();
    this.reschedule();
  }

  createProof(method, url, accessToken, nonce) {
    return this.proof(method, url, accessToken, nonce);
  }
}
