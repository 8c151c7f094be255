/**
 * keybound: device-bound browser sessions.
 *
 * Every request sent through {@link Keybound.fetch} carries a DPoP proof (RFC 9449)
 * signed by a key that cannot leave this browser (WebCrypto Ed25519, else P-256). Tokens refresh silently,
 * once across all open tabs; the app hears about a session's end before and when it
 * happens.
 *
 * @example
 * ```ts
 * import { Keybound } from "keybound";
 * const kb = await Keybound.init({ endpoint: "/session" });
 * if (kb.state !== "active") {
 *   await kb.login("/api/login", { body: JSON.stringify({ username, password }) });
 * }
 * const me = await (await kb.fetch("/api/me")).json();
 * kb.addEventListener("expiring", (e) => askToStay(e.detail.secondsLeft));
 * kb.addEventListener("revoked", () => showSignedOut());
 * ```
 */

/** `kb.state`: the session state machine of the server, plus `anonymous`. */
export type SessionState = "anonymous" | "active" | "expired" | "revoked" | "closed";

/**
 * The device key:
 * - `"webcrypto"`: a non-extractable WebCrypto Ed25519 key (proofs `EdDSA`), where the
 *   browser has WebCrypto Ed25519;
 * - `"webcrypto-p256"`: a non-extractable WebCrypto ECDSA P-256 key (proofs `ES256`),
 *   where it does not (Chrome before 137, Firefox before 129, Safari before 17). The
 *   same guarantee: the private key cannot be read or copied, only used by this origin;
 * - `"wasm"`: an Ed25519 key inside the separately loaded fallback module, only with
 *   {@link KeyboundOptions.forceWasmKeys}; its seed is sealed under a non-extractable
 *   AES-GCM key that any script in the page can ask to decrypt.
 *
 * A key keeps its kind until logout, also when the browser later gains Ed25519.
 */
export type KeyKind = "webcrypto" | "webcrypto-p256" | "wasm";

/** Where the WebAssembly module comes from (by default next to this file). */
export type WasmSource =
  | string
  | URL
  | Request
  | Response
  | BufferSource
  | WebAssembly.Module
  | Promise<Response>;

/** Options of {@link Keybound.init}. */
export interface KeyboundOptions {
  /** URL of the server's session router, relative to the page. Default `"/session"`. */
  endpoint?: string;
  /**
   * Other origins (`"https://api.example.com"`: scheme, host and port, nothing more)
   * that get the access token and a proof from {@link Keybound.fetch},
   * {@link Keybound.login}, {@link Keybound.rotate} and {@link Keybound.createProof}.
   * The endpoint's origin always does. A signed request to any other origin is refused
   * with `origin_not_allowed` before anything is sent, and an answer from any other
   * origin (after a redirect) never changes the session. Default `[]`.
   */
  allowedOrigins?: string[];
  /**
   * Name of the IndexedDB database, the Web Lock and the BroadcastChannel. Apps that
   * talk to several keybound servers from one origin use one name per server.
   * Default `"keybound"`.
   */
  storageName?: string;
  /** Seconds before the session's end at which `expiring` fires. Default `120`. */
  expiringLeadSeconds?: number;
  /**
   * Use an Ed25519 key inside the WebAssembly module (fetched only then) instead of a
   * WebCrypto key. Its seed is stored encrypted under a non-extractable AES-GCM key,
   * which any script in the page can ask to decrypt: it guarantees less than the
   * default WebCrypto key. For tests and for comparing the two. A stored WebCrypto key
   * a live session is bound to is kept.
   */
  forceWasmKeys?: boolean;
  /** Where to load the WebAssembly module from (bundlers usually need nothing here). */
  wasm?: WasmSource;
}

/** The live session. Times are epoch milliseconds on this browser's clock. */
export interface SessionInfo {
  /** The session id. */
  id: string;
  /** When the current access token expires (it is refreshed before, while in use). */
  accessTokenExpiresAt: number;
  /** When the session ends unless used (refreshed or extended) before. */
  idleExpiresAt: number;
  /** When the session ends at the latest. */
  expiresAt: number;
}

/** Options of {@link Keybound.sessionPage}. */
export interface SessionPageOptions {
  /** Sessions per page, 1 to 200 (the server's default: 50). */
  limit?: number;
  /** `nextCursor` of the previous page; none for the first page. */
  cursor?: string | null;
}

/** One page of the user's sessions, newest first. */
export interface SessionPage {
  /** The sessions on this page. */
  sessions: SessionSummary[];
  /** The `cursor` of the next page; `null` on the last page. */
  nextCursor: string | null;
}

/** One of the user's sessions, as {@link Keybound.sessions} lists them. */
export interface SessionSummary {
  /** The session id. */
  id: string;
  /** When the session was opened. */
  createdAt: Date | null;
  /** The last login, refresh or extend. */
  lastSeenAt: Date | null;
  /** When it ends unless used. */
  idleExpiresAt: Date | null;
  /** When it ends at the latest. */
  expiresAt: Date | null;
  /** The device label the server recorded at login (the browser's user agent by default). */
  deviceLabel: string | null;
  /** `"active"`, `"expired"`, `"revoked"` or `"closed"`. */
  state: string;
  /** Why it ended, when it did (as the server words it). */
  reason: unknown;
  /** When it ended. */
  endedAt: Date | null;
  /** Whether this is the session of this browser. */
  current: boolean;
  /** How the session is bound to its device: `"dpop"` (an SDK's key) or `"dbsc"` (the browser's own key, Device Bound Session Credentials). */
  binding: "dpop" | "dbsc";
}

/** `detail` of the `expiring` event. */
export interface ExpiringDetail {
  /** Whole seconds until the session ends. */
  secondsLeft: number;
  /** `"idle"`: {@link Keybound.extend} or any use keeps it; `"absolute"`: it cannot be extended. */
  reason: "idle" | "absolute";
}

/** `detail` of the `expired`, `revoked` and `closed` events. */
export interface EndedDetail {
  /** The session that ended. */
  sessionId: string | null;
  /** For `expired`, when this browser saw the deadline pass: which one. */
  reason?: "idle" | "absolute";
}

/** The events a {@link Keybound} dispatches. */
export interface KeyboundEventMap {
  /** The session ends in `expiringLeadSeconds` unless something happens. */
  expiring: CustomEvent<ExpiringDetail>;
  /** New tokens, from this tab or another one. */
  refreshed: CustomEvent<SessionInfo>;
  /** A new session, from a login in this tab or another one. */
  login: CustomEvent<SessionInfo>;
  /** The session reached its idle or absolute end. */
  expired: CustomEvent<EndedDetail>;
  /** The session was revoked (elsewhere, by an admin, or on refresh-token reuse). */
  revoked: CustomEvent<EndedDetail>;
  /** The user logged out (in this tab or another one). */
  closed: CustomEvent<EndedDetail>;
  /** Something failed in the background (a refresh that will be retried, storage). */
  error: CustomEvent<KeyboundError>;
}

/**
 * An error from keybound. `code` is stable: the server's `error_code` for server
 * answers (`invalid_credentials`, `iat_too_old`, …), or one of the SDK's own codes.
 */
export class KeyboundError extends Error {
  constructor(
    code: string,
    message: string,
    options?: { status?: number; retryAfter?: number; cause?: unknown },
  );
  readonly name: "KeyboundError";
  /**
   * `not_logged_in`, `session_expired`, `session_revoked`, `session_closed`,
   * `network_error`, `aborted`, `invalid_input`, `invalid_response`, `crypto_error`,
   * `storage_error`, `unsupported_browser`, `invalid_option`, `disposed`, `invalid_url`,
   * `origin_not_allowed` (a signed request for an origin not in `allowedOrigins`;
   * nothing was sent), `rate_limited` (any `429`, see {@link retryAfter}), or a code
   * from the server (`invalid_page_limit`, `invalid_cursor`, …).
   */
  readonly code: string;
  /** The HTTP status, when the error is a server's answer. */
  readonly status: number | undefined;
  /** For `rate_limited`: the seconds the server's `Retry-After` asks to wait, if it said. */
  readonly retryAfter: number | undefined;
}

/** Options of {@link Keybound.createProof}. */
export interface ProofOptions {
  /** Binds the proof to this access token (`ath`). */
  accessToken?: string;
  /** The server nonce to include (default: the last one that origin gave). */
  nonce?: string;
}

type Listener<K extends keyof KeyboundEventMap> = (this: Keybound, event: KeyboundEventMap[K]) => unknown;

/** A keybound session client. */
export class Keybound extends EventTarget {
  private constructor();

  /**
   * Loads the module, opens the key store (creating the device key on first use) and
   * resumes a session stored by an earlier page. Rejects with a {@link KeyboundError}
   * (`invalid_option`, `unsupported_browser`, `storage_error`).
   */
  static init(options?: KeyboundOptions): Promise<Keybound>;

  /** The session state. */
  readonly state: SessionState;
  /** RFC 7638 thumbprint of the device key; `null` after logout until the next login. */
  readonly thumbprint: string | null;
  /** Where the device key lives; `null` after logout until the next login. */
  readonly keyKind: KeyKind | null;
  /** The live session, or `null`. */
  readonly session: SessionInfo | null;
  /**
   * `true` when the device key and the session are kept in IndexedDB (they survive a
   * reload and are shared by the tabs of this origin); `false` when the browser gave
   * no storage (Safari's Lockdown Mode, some private modes): the key (still a
   * non-extractable WebCrypto key) and the session then live in this tab's memory and
   * end with it.
   */
  readonly persistent: boolean;

  /**
   * Logs in through the app's own login route, which answers with a token response.
   * The request carries a proof of the device key; `POST` is the default method and a
   * string body is sent as JSON unless `init.headers` says otherwise. Rejects with the
   * server's code (e.g. `invalid_credentials`) when the login is refused, and with
   * `rate_limited` (and {@link KeyboundError.retryAfter}) when the server answers `429`.
   */
  login(url: string | URL, init?: RequestInit): Promise<SessionInfo>;

  /**
   * `fetch` with the access token (`Authorization: DPoP …`) and a fresh proof. Same
   * contract as `fetch`: resolves with the `Response` whatever its status. Refreshes
   * first when the access token is due; retries once on a nonce challenge, a clock
   * skew or a refused access token. Rejects with a {@link KeyboundError} when there is
   * no session (`not_logged_in`, `session_revoked`, …), the URL's origin is not allowed
   * (`origin_not_allowed`, see {@link KeyboundOptions.allowedOrigins}; nothing is
   * sent) or the network failed (`network_error`, `aborted`).
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

  /** Refreshes now, which moves the idle deadline (e.g. from an `expiring` prompt). */
  extend(): Promise<SessionInfo>;

  /** Tells keybound the app is in use, without a request (keeps tokens refreshed). */
  touch(): void;

  /** The user's sessions on all devices, newest first (every page, 200 at a time). */
  sessions(): Promise<SessionSummary[]>;

  /**
   * One page of the user's sessions, newest first: pass `nextCursor` as `cursor` until
   * it is `null`; each session comes exactly once. Rejects with `invalid_page_limit`
   * or `invalid_cursor` (status 400) for a bad `limit` or `cursor`.
   *
   * @example
   * ```ts
   * let page = await kb.sessionPage({ limit: 20 });
   * while (page.nextCursor) page = await kb.sessionPage({ limit: 20, cursor: page.nextCursor });
   * ```
   */
  sessionPage(options?: SessionPageOptions): Promise<SessionPage>;

  /** Revokes one of the user's sessions (this one too, if the id is this session's). */
  revokeSession(id: string): Promise<void>;

  /** Revokes every other session of the user; resolves to the server's answer body. */
  revokeOthers(): Promise<unknown>;

  /**
   * A sensitive action that replaces this session's tokens, such as a password change:
   * sends a signed request (like {@link Keybound.fetch}; `POST` and JSON by default, as
   * {@link Keybound.login}) to an app route that calls the server's
   * `rotate_on_sensitive_action` and answers with a token response, then takes up the
   * new tokens (all tabs get them; `refreshed` fires). No refresh runs meanwhile, so
   * the replaced refresh token is never presented again. Rejects with the route's code
   * (e.g. `wrong_password`) when it refuses.
   *
   * @example
   * ```ts
   * await kb.rotate("/api/change-password", {
   *   body: JSON.stringify({ current_password, new_password }),
   * });
   * ```
   */
  rotate(url: string | URL, init?: RequestInit): Promise<SessionInfo>;

  /**
   * Closes the session on the server and deletes the device key and the tokens from
   * this browser (even when the server cannot be reached). All tabs see `closed`.
   */
  logout(): Promise<void>;

  /**
   * A DPoP proof for `method` and `url` by this device key, for transports `fetch`
   * does not cover. Only for the endpoint's origin and `allowedOrigins`; any other
   * origin is refused with `origin_not_allowed`.
   */
  createProof(method: string, url: string | URL, options?: ProofOptions): Promise<string>;

  /** Stops timers and listeners; the object cannot be used afterwards. */
  dispose(): void;

  addEventListener<K extends keyof KeyboundEventMap>(
    type: K,
    listener: Listener<K>,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof KeyboundEventMap>(
    type: K,
    listener: Listener<K>,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

export default Keybound;
