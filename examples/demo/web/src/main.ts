// The keybound demo app: sign in, call protected APIs with `kb.fetch`, watch the
// session's deadlines, manage devices, and see every lifecycle event as it happens.
import { Keybound, KeyboundError, type SessionSummary } from "keybound";
import { ago, byId, clock, duration, fill, h, short } from "./dom";
import { readEventStream } from "./stream";
import "./style.css";

// ---- types of the demo API ---------------------------------------------------------

interface Config {
  access_token_lifetime_secs: number;
  idle_timeout_secs: number;
  absolute_lifetime_secs: number;
  demo_users: string[];
  store: string;
  public_origin: string;
}

interface Me {
  user: string;
  name: string;
  session_id: string;
  device_label: string | null;
  created_at: number;
}

interface Order {
  id: string;
  item: string;
  total_cents: number;
  status: string;
}

interface Note {
  id: number;
  text: string;
  created_at: number;
}

interface AuditEvent {
  ts: number;
  event: string;
  session_id: string;
  user_id: string;
  reason: string | null;
  actor: string;
  generation: number;
}

type Ending = "revoked" | "expired" | "closed";

// ---- state -------------------------------------------------------------------------

const DEMO_PASSWORDS: Record<string, string> = { alice: "wonderland", bob: "builder" };

let config: Config;
let kb: Keybound;
let me: Me | null = null;
let sessions: SessionSummary[] = [];
/** Why the server ended this session, from the audit stream (before the SDK notices). */
let serverReason: string | null = null;
/** A note whose saving was interrupted by the session's end: saved after signing in again. */
let pendingNote: string | null = null;
let stream: AbortController | null = null;
let streamLive = false;
let lastTouch = 0;
/** The session the page shows. */
let shownSession: string | null = null;

const app = byId("app");

// ---- small UI pieces ---------------------------------------------------------------

function toast(text: string, kind: "info" | "error" | "ok" = "info"): void {
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  byId("toasts").append(el);
  setTimeout(() => el.classList.add("leaving"), 4200);
  setTimeout(() => el.remove(), 4600);
}

function banner(text: string | null, kind: "info" | "warn" | "error" = "info"): void {
  const el = byId("banner");
  el.hidden = text === null;
  el.className = `banner ${kind}`;
  fill(el, text ?? "");
}

function stateBadge(state: string): HTMLElement {
  return h("span", { class: `badge state-${state}` }, state);
}

function errorText(error: unknown): string {
  if (error instanceof KeyboundError) {
    switch (error.code) {
      case "session_revoked":
        return "This session was revoked.";
      case "session_expired":
        return "This session expired.";
      case "session_closed":
      case "not_logged_in":
        return "You are signed out.";
      case "network_error":
        return "The server cannot be reached.";
      default:
        return error.message || error.code;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

function isSessionEnd(error: unknown): boolean {
  return (
    error instanceof KeyboundError &&
    ["session_revoked", "session_expired", "session_closed", "not_logged_in"].includes(error.code)
  );
}

function updateHeader(): void {
  const active = kb.state === "active" || me !== null;
  byId("who").hidden = !active;
  const badge = byId("state-badge");
  badge.className = `badge state-${kb.state}`;
  badge.textContent = kb.state;
  byId("who-name").textContent = me ? me.name : "";
  byId<HTMLButtonElement>("sign-out").hidden = kb.state !== "active";
}

function keyKindText(kind: string | null, persistent = true): string {
  // Without storage (Safari's Lockdown Mode, some private modes) key and session live in this tab.
  const where = persistent ? "" : "; kept in this tab only, this browser gives no storage";
  if (kind === "webcrypto") return `WebCrypto Ed25519, non-extractable${where}`;
  if (kind === "webcrypto-p256") return `WebCrypto ECDSA P-256 (no Ed25519 here), non-extractable${where}`;
  if (kind === "wasm") return `Ed25519 in WebAssembly, seed sealed by a non-extractable AES-GCM key${where}`;
  return "none (created at the next sign-in)";
}

// ---- the timeline ------------------------------------------------------------------

const timeline: HTMLElement = h("ol", { class: "timeline", "data-testid": "timeline" });

function addTimeline(source: "browser" | "server", name: string, detail: string, tone = ""): void {
  const item = h(
    "li",
    { class: `tl-item ${tone}`, "data-source": source, "data-event": name },
    h("time", {}, clock(Date.now())),
    h("span", { class: `chip ${source}` }, source === "browser" ? "this browser" : "server"),
    h("strong", {}, name),
    h("span", { class: "tl-detail" }, detail),
  );
  timeline.prepend(item);
  while (timeline.children.length > 150) timeline.lastElementChild?.remove();
}

function sessionName(id: string): string {
  if (id === kb.session?.id || id === me?.session_id) return "this session";
  const known = sessions.find((s) => s.id === id);
  return known ? `${known.deviceLabel ?? "other device"} (${short(id, 4)})` : `session ${short(id, 4)}`;
}

const AUDIT_TONE: Record<string, string> = {
  "session.created": "good",
  "session.refreshed": "",
  "session.rotated": "warn",
  "session.revoked": "bad",
  "session.refresh_reuse": "bad",
  "session.closed": "muted",
  "session.expired": "warn",
  "session.purged": "muted",
};

// ---- the audit stream --------------------------------------------------------------

async function openStream(): Promise<void> {
  closeStream();
  const controller = new AbortController();
  stream = controller;
  let delay = 1000;
  while (stream === controller && kb.state === "active") {
    try {
      const res = await kb.fetch("/api/events", {
        headers: { Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!res.ok || !res.body) throw new Error(`the event stream answered ${res.status}`);
      setStreamLive(true);
      delay = 1000;
      await readEventStream(res.body, ({ event, data }) => onStreamEvent(event, JSON.parse(data)));
    } catch (error) {
      if (controller.signal.aborted || isSessionEnd(error)) break;
    }
    setStreamLive(false);
    if (stream !== controller || kb.state !== "active") break;
    // The server closed the stream or the connection dropped: try again, more slowly
    // each time (a reconnect is a signed request like any other).
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 30_000);
  }
  setStreamLive(false);
}

function closeStream(): void {
  stream?.abort();
  stream = null;
  setStreamLive(false);
}

function setStreamLive(live: boolean): void {
  streamLive = live;
  const dot = document.getElementById("stream-state");
  if (dot) {
    dot.className = `live-dot ${live ? "on" : ""}`;
    dot.title = live ? "live: server audit stream connected" : "server audit stream not connected";
  }
}

function onStreamEvent(event: string, data: Record<string, unknown>): void {
  if (event === "audit") {
    const e = data as unknown as AuditEvent;
    const mine = e.session_id === kb.session?.id;
    const parts = [sessionName(e.session_id)];
    if (e.reason) parts.push(`reason ${e.reason}`);
    parts.push(`by ${e.actor}`, `generation ${e.generation}`);
    addTimeline("server", e.event, parts.join(" · "), AUDIT_TONE[e.event] ?? "");
    if (mine && ["session.revoked", "session.refresh_reuse", "session.closed", "session.expired"].includes(e.event)) {
      serverReason = e.reason ?? e.event;
      // Let the SDK find out now rather than at the next click: its `revoked` (or
      // `expired`) event then updates the page.
      void kb.fetch("/api/me").catch(() => {});
    } else if (!mine) {
      onOtherSessionEvent(e);
    }
  } else if (event === "hello") {
    addTimeline("server", "audit stream connected", "events of all your sessions appear here", "muted");
  } else if (event === "ended") {
    serverReason = String(data.reason ?? data.state);
    addTimeline("server", "stream ended", `this session is ${String(data.state)}`, "warn");
    void kb.fetch("/api/me").catch(() => {});
  } else if (event === "lagged") {
    addTimeline("server", "events missed", `${String(data.missed)} events were dropped`, "warn");
  }
}

function onOtherSessionEvent(e: AuditEvent): void {
  const known = sessions.find((s) => s.id === e.session_id);
  const ended: Record<string, string> = {
    "session.revoked": "revoked",
    "session.refresh_reuse": "revoked",
    "session.closed": "closed",
    "session.expired": "expired",
  };
  if (known && ended[e.event]) {
    known.state = ended[e.event];
    renderDevices();
  } else if (e.event === "session.created") {
    // A new sign-in elsewhere: worth a request to show the device.
    void loadDevices();
  }
}

// ---- sign in -----------------------------------------------------------------------

function credentialsForm(opts: {
  user?: string;
  lockUser?: boolean;
  submitLabel: string;
  testid: string;
}): HTMLFormElement {
  const username = h("input", {
    name: "username",
    autocomplete: "username",
    required: true,
    value: opts.user ?? "",
    readonly: opts.lockUser ?? false,
    "data-testid": `${opts.testid}-username`,
  });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    "data-testid": `${opts.testid}-password`,
  });
  const error = h("p", { class: "form-error", role: "alert", "data-testid": `${opts.testid}-error` });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": `${opts.testid}-submit` }, opts.submitLabel);
  const form = h(
    "form",
    { class: "stack", "data-testid": opts.testid },
    h("label", {}, "Username", username),
    h("label", {}, "Password", password),
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await kb.login("/api/login", {
        body: JSON.stringify({ username: username.value.trim(), password: password.value }),
      });
      // The SDK's `login` event takes it from here (see `onSignedIn`).
      password.value = "";
    } catch (e) {
      error.textContent =
        e instanceof KeyboundError && e.code === "invalid_credentials"
          ? "Unknown user or wrong password."
          : errorText(e);
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = opts.submitLabel;
    }
  });
  if (!opts.lockUser) {
    const chips = h(
      "div",
      { class: "chips" },
      h("span", { class: "muted" }, "Demo users:"),
      config.demo_users.map((u) =>
        h(
          "button",
          {
            type: "button",
            class: "chip-button",
            onclick: () => {
              username.value = u;
              password.value = DEMO_PASSWORDS[u] ?? "";
              submit.focus();
            },
          },
          `${u} / ${DEMO_PASSWORDS[u] ?? "…"}`,
        ),
      ),
    );
    form.prepend(chips);
  }
  return form;
}

function renderSignIn(message: string | null = null): void {
  closeStream();
  closeModal();
  shownSession = null;
  me = null;
  sessions = [];
  updateHeader();
  banner(null);
  const form = credentialsForm({ submitLabel: "Sign in", testid: "signin" });
  fill(
    app,
    h(
      "section",
      { class: "signin" },
      h(
        "div",
        { class: "card signin-card" },
        h("h1", {}, "Sign in"),
        message ? h("p", { class: "notice", "data-testid": "signin-notice" }, message) : null,
        form,
      ),
      h(
        "div",
        { class: "card explain" },
        h("h2", {}, "What happens"),
        h(
          "ol",
          {},
          h("li", {}, "This browser holds a device key: ", h("strong", { "data-testid": "key-kind" }, keyKindText(kb.keyKind, kb.persistent)), "."),
          h("li", {}, "Signing in proves possession of that key; the session is bound to it."),
          h("li", {}, "Every API call carries a fresh signature (DPoP). A stolen token is useless on another device."),
          h("li", {}, "Tokens refresh silently while you use the app; an idle session ends, and you are asked first."),
        ),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "Access token"),
          h("dd", {}, duration(config.access_token_lifetime_secs * 1000)),
          h("dt", {}, "Idle timeout"),
          h("dd", {}, duration(config.idle_timeout_secs * 1000)),
          h("dt", {}, "Session at most"),
          h("dd", {}, duration(config.absolute_lifetime_secs * 1000)),
          h("dt", {}, "Session store"),
          h("dd", {}, config.store),
        ),
      ),
    ),
  );
  form.querySelector<HTMLInputElement>("input[name=username]")?.focus();
}

// ---- the dashboard -----------------------------------------------------------------

const refs: Record<string, HTMLElement> = {};

function card(title: string, testid: string, ...body: (Node | null)[]): HTMLElement {
  return h("section", { class: "card", "data-testid": testid }, h("h2", {}, title), ...body);
}

function row(label: string, value: Node | string, testid?: string): HTMLElement[] {
  return [h("dt", {}, label), h("dd", testid ? { "data-testid": testid } : {}, value)];
}

/** A session started: show the dashboard, or bring the existing one back to life. */
async function onSignedIn(): Promise<void> {
  const id = kb.session?.id ?? null;
  if (id === null || id === shownSession) return;
  shownSession = id;
  if (refs.sessionState?.isConnected) await resumeAfterSignIn();
  else await showDashboard();
}

async function showDashboard(): Promise<void> {
  shownSession = kb.session?.id ?? null;
  serverReason = null;
  closeModal();
  buildDashboard();
  updateHeader();
  banner(null);
  addTimeline("browser", "signed in", `session ${short(kb.session?.id, 4)}`, "good");
  await Promise.all([loadMe(), loadOrders(), loadDevices(), loadNotes()]);
  void openStream();
}

function buildDashboard(): void {
  const bar = (id: string) => h("div", { class: "bar" }, (refs[id] = h("div", { class: "bar-fill" })));
  const sessionPanel = card(
    "This session",
    "session-panel",
    h(
      "div",
      { class: "state-line" },
      (refs.sessionState = h("span", { class: "badge", "data-testid": "session-state" })),
      (refs.sessionId = h("code", {})),
    ),
    h(
      "div",
      { class: "meter" },
      h("div", { class: "meter-label" }, h("span", {}, "Access token"), (refs.accessLeft = h("span", { "data-testid": "access-left" }))),
      bar("accessBar"),
    ),
    h(
      "div",
      { class: "meter" },
      h("div", { class: "meter-label" }, h("span", {}, "Idle deadline"), (refs.idleLeft = h("span", { "data-testid": "idle-left" }))),
      bar("idleBar"),
    ),
    h(
      "div",
      { class: "meter" },
      h("div", { class: "meter-label" }, h("span", {}, "Absolute deadline"), (refs.absoluteLeft = h("span", { "data-testid": "absolute-left" }))),
      bar("absoluteBar"),
    ),
    h(
      "dl",
      { class: "facts" },
      row("Device key", (refs.keyKind = h("span", {})), "key-kind"),
      row("Key thumbprint", (refs.thumbprint = h("code", {}))),
      row("Server events", h("span", {}, (refs.streamDot = h("span", { id: "stream-state", class: "live-dot" })), " audit stream")),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", "data-testid": "extend", title: "Refresh now: moves the idle deadline", onclick: () => void extend() }, "Extend now"),
      h("button", { type: "button", class: "ghost", onclick: () => void signOut() }, "Sign out"),
    ),
  );

  const profile = card(
    "Your account",
    "profile",
    (refs.profile = h("dl", { class: "facts" })),
    h("h3", {}, "Orders ", h("small", { class: "muted" }, "GET /api/orders")),
    (refs.orders = h("div", { "data-testid": "orders" })),
    h("div", { class: "actions" }, h("button", { type: "button", "data-testid": "reload-orders", onclick: () => void loadOrders(true) }, "Reload orders")),
  );

  const noteInput = (refs.noteInput = h("textarea", {
    rows: 3,
    maxlength: 500,
    placeholder: "Write something, then save it with a signed request…",
    "data-testid": "note-input",
  }));
  const notes = card(
    "Notes",
    "notes",
    noteInput,
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", "data-testid": "save-note", onclick: () => void saveNote() }, "Save note")),
    (refs.notes = h("ul", { class: "notes", "data-testid": "note-list" })),
  );

  const devices = card(
    "Your devices",
    "devices",
    h("p", { class: "muted" }, "Every session of your account, on any browser. Revoking one ends it at its next request."),
    (refs.devices = h("div", { "data-testid": "device-list" })),
    h(
      "div",
      { class: "actions" },
      (refs.revokeOthers = h("button", { type: "button", class: "danger", "data-testid": "revoke-others", onclick: () => void revokeOthers() }, "Sign out everywhere else")),
      h("button", { type: "button", class: "ghost", "data-testid": "reload-devices", onclick: () => void loadDevices(true) }, "Refresh"),
    ),
  );

  const current = h("input", { type: "password", name: "current", autocomplete: "current-password", required: true, "data-testid": "current-password" });
  const next = h("input", { type: "password", name: "new", autocomplete: "new-password", required: true, minlength: 6, "data-testid": "new-password" });
  const pwMessage = h("p", { class: "form-message", role: "status", "data-testid": "password-message" });
  const pwForm = h(
    "form",
    { class: "stack", "data-testid": "password-form" },
    h("label", {}, "Current password", current),
    h("label", {}, "New password", next),
    pwMessage,
    h("button", { type: "submit", class: "primary", "data-testid": "change-password" }, "Change password"),
  );
  pwForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void changePassword(current, next, pwMessage);
  });
  const security = card(
    "Change password",
    "security",
    h("p", { class: "muted" }, "A sensitive action: this session gets new tokens and every other session is signed out."),
    pwForm,
  );

  const events = card(
    "Live events",
    "events",
    h("p", { class: "muted" }, "From this browser's SDK and from the server's audit stream."),
    timeline,
  );

  fill(
    app,
    h(
      "div",
      { class: "grid" },
      h("div", { class: "col" }, sessionPanel, security),
      h("div", { class: "col" }, profile, notes),
      h("div", { class: "col" }, devices, events),
    ),
  );
  setStreamLive(streamLive);
  tick();
}

/** Redraws the session panel from `kb.session` (no request). */
function tick(): void {
  if (!refs.sessionState?.isConnected) return;
  const s = kb.session;
  const state = kb.state;
  refs.sessionState.className = `badge state-${state}`;
  refs.sessionState.textContent = state;
  refs.sessionId.textContent = s ? `session ${short(s.id, 8)}` : "";
  refs.keyKind.textContent = keyKindText(kb.keyKind, kb.persistent);
  refs.thumbprint.textContent = short(kb.thumbprint, 10);
  const now = Date.now();
  const meter = (left: HTMLElement, bar: HTMLElement, end: number | undefined, total: number, lapsed: string) => {
    if (!s || end === undefined) {
      left.textContent = "–";
      bar.style.width = "0%";
      return;
    }
    const remaining = end - now;
    left.textContent = remaining > 0 ? `${duration(remaining)} · ${clock(end)}` : lapsed;
    bar.style.width = `${Math.max(0, Math.min(100, (remaining / total) * 100))}%`;
    bar.classList.toggle("low", remaining < total * 0.2);
  };
  meter(refs.accessLeft, refs.accessBar, s?.accessTokenExpiresAt, config.access_token_lifetime_secs * 1000, "lapsed: renewed at the next request");
  meter(refs.idleLeft, refs.idleBar, s?.idleExpiresAt, config.idle_timeout_secs * 1000, "passed");
  meter(refs.absoluteLeft, refs.absoluteBar, s?.expiresAt, config.absolute_lifetime_secs * 1000, "passed");
  const prompt = document.querySelector<HTMLElement>("[data-countdown]");
  if (prompt && s) prompt.textContent = duration(s.idleExpiresAt - now);
}

async function loadMe(): Promise<void> {
  try {
    const res = await kb.fetch("/api/me");
    if (!res.ok) return;
    me = (await res.json()) as Me;
    updateHeader();
    fill(
      refs.profile,
      row("Signed in as", `${me.name} (${me.user})`, "profile-user"),
      row("This device", me.device_label ?? "–"),
      row("Session opened", new Date(me.created_at * 1000).toLocaleString()),
    );
  } catch (error) {
    if (!isSessionEnd(error)) toast(errorText(error), "error");
  }
}

async function loadOrders(manual = false): Promise<void> {
  try {
    const res = await kb.fetch("/api/orders");
    if (!res.ok) {
      fill(refs.orders, h("p", { class: "form-error" }, `The server answered ${res.status}.`));
      return;
    }
    const { orders } = (await res.json()) as { orders: Order[] };
    fill(
      refs.orders,
      h(
        "table",
        { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Order"), h("th", {}, "Item"), h("th", { class: "num" }, "Total"), h("th", {}, "Status"))),
        h(
          "tbody",
          {},
          orders.map((o) =>
            h(
              "tr",
              {},
              h("td", {}, h("code", {}, o.id)),
              h("td", {}, o.item),
              h("td", { class: "num" }, `$${(o.total_cents / 100).toFixed(2)}`),
              h("td", {}, h("span", { class: `badge order-${o.status}` }, o.status)),
            ),
          ),
        ),
      ),
    );
    if (manual) toast("Orders reloaded with a signed request.", "ok");
  } catch (error) {
    fill(refs.orders, h("p", { class: "form-error", "data-testid": "orders-error" }, errorText(error)));
  }
}

async function loadNotes(): Promise<void> {
  try {
    const res = await kb.fetch("/api/notes");
    if (!res.ok) return;
    const { notes } = (await res.json()) as { notes: Note[] };
    fill(
      refs.notes,
      notes.length === 0
        ? h("li", { class: "muted" }, "No notes yet.")
        : notes.map((n) => h("li", {}, h("time", {}, clock(n.created_at * 1000)), h("span", {}, n.text))),
    );
  } catch (error) {
    if (!isSessionEnd(error)) toast(errorText(error), "error");
  }
}

async function saveNote(): Promise<void> {
  const input = refs.noteInput as HTMLTextAreaElement;
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  try {
    const res = await kb.fetch("/api/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text }),
    });
    if (!res.ok) {
      toast(((await res.json()) as { error_description?: string }).error_description ?? `Error ${res.status}`, "error");
      return;
    }
    input.value = "";
    pendingNote = null;
    toast("Note saved.", "ok");
    await loadNotes();
  } catch (error) {
    if (isSessionEnd(error)) {
      // The draft stays in the box; it is saved once the user has signed in again.
      pendingNote = text;
      showEnded(endingOf(error));
    } else {
      toast(errorText(error), "error");
    }
  }
}

function endingOf(error: unknown): Ending {
  if (error instanceof KeyboundError && error.code === "session_expired") return "expired";
  if (error instanceof KeyboundError && error.code === "session_revoked") return "revoked";
  return kb.state === "expired" || kb.state === "revoked" ? kb.state : "closed";
}

async function loadDevices(manual = false): Promise<void> {
  try {
    sessions = await kb.sessions();
    renderDevices();
    if (manual) toast("Device list refreshed.", "ok");
  } catch (error) {
    if (!isSessionEnd(error)) toast(errorText(error), "error");
  }
}

function renderDevices(): void {
  if (!refs.devices) return;
  const active = sessions.filter((s) => s.state === "active");
  const ended = sessions.filter((s) => s.state !== "active").slice(0, 8);
  const item = (s: SessionSummary) =>
    h(
      "li",
      { class: `device ${s.current ? "current" : ""} ${s.state}`, "data-testid": "device", "data-session": s.id, "data-state": s.state, "data-current": String(s.current) },
      h(
        "div",
        { class: "device-main" },
        h("strong", {}, s.deviceLabel ?? "Unknown device"),
        s.current ? h("span", { class: "badge this-device", "data-testid": "this-device" }, "this device") : null,
        s.state !== "active" ? stateBadge(s.state) : null,
      ),
      h("div", { class: "device-meta muted" }, `signed in ${ago(s.createdAt)} · last active ${ago(s.lastSeenAt)} · ${short(s.id, 4)}`),
      s.state === "active" && !s.current
        ? h("button", { type: "button", class: "small danger", "data-testid": "revoke", onclick: () => void revokeOne(s) }, "Revoke")
        : null,
    );
  fill(
    refs.devices,
    h("ul", { class: "devices" }, active.map(item)),
    ended.length
      ? h("details", { class: "ended" }, h("summary", {}, `Recently ended (${ended.length})`), h("ul", { class: "devices" }, ended.map(item)))
      : null,
  );
  (refs.revokeOthers as HTMLButtonElement).disabled = !active.some((s) => !s.current);
}

async function revokeOne(s: SessionSummary): Promise<void> {
  try {
    await kb.revokeSession(s.id);
    toast(`Revoked ${s.deviceLabel ?? "the session"}.`, "ok");
    addTimeline("browser", "revoked a device", sessionName(s.id), "warn");
    await loadDevices();
  } catch (error) {
    toast(errorText(error), "error");
  }
}

async function revokeOthers(): Promise<void> {
  try {
    const answer = (await kb.revokeOthers()) as { revoked?: number } | undefined;
    const n = answer?.revoked ?? 0;
    toast(n === 1 ? "Signed out 1 other session." : `Signed out ${n} other sessions.`, "ok");
    addTimeline("browser", "signed out everywhere else", `${n} sessions revoked`, "warn");
    await loadDevices();
  } catch (error) {
    toast(errorText(error), "error");
  }
}

async function changePassword(current: HTMLInputElement, next: HTMLInputElement, message: HTMLElement): Promise<void> {
  message.className = "form-message";
  message.textContent = "";
  try {
    await kb.rotate("/api/change-password", {
      body: JSON.stringify({ current_password: current.value, new_password: next.value }),
    });
    current.value = "";
    next.value = "";
    message.className = "form-message ok";
    message.textContent = "Password changed. This session has new tokens; every other session was signed out.";
    addTimeline("browser", "password changed", "tokens rotated, other sessions revoked", "warn");
    await loadDevices();
  } catch (error) {
    message.className = "form-message error";
    if (error instanceof KeyboundError && error.code === "wrong_password") message.textContent = "The current password is wrong.";
    else if (error instanceof KeyboundError && error.code === "weak_password")
      message.textContent = "Choose 6 to 128 characters, different from the current password.";
    else message.textContent = errorText(error);
  }
}

async function extend(): Promise<void> {
  try {
    await kb.extend();
    closeModal("expiring");
    toast("You stay signed in.", "ok");
  } catch (error) {
    toast(errorText(error), "error");
  }
}

async function signOut(): Promise<void> {
  closeStream();
  await kb.logout();
}

// ---- modals ------------------------------------------------------------------------

function closeModal(kind?: string): void {
  const open = document.querySelector<HTMLElement>(".modal-backdrop");
  if (open && (!kind || open.dataset.kind === kind)) open.remove();
  app.inert = false;
}

function modal(kind: string, ...body: Node[]): HTMLElement {
  closeModal();
  const dialog = h("div", { class: "modal", role: "dialog", "aria-modal": "true", "data-testid": `modal-${kind}` }, ...body);
  const backdrop = h("div", { class: "modal-backdrop", "data-kind": kind }, dialog);
  document.body.append(backdrop);
  app.inert = true;
  return dialog;
}

function showExpiring(secondsLeft: number): void {
  if (kb.state !== "active") return;
  const dialog = modal(
    "expiring",
    h("h2", {}, "Stay signed in?"),
    h(
      "p",
      {},
      "You have been inactive for a while. This session ends in ",
      h("strong", { "data-countdown": "" }, duration(secondsLeft * 1000)),
      " unless you stay.",
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", "data-testid": "stay-signed-in", onclick: () => void extend() }, "Stay signed in"),
      h("button", { type: "button", class: "ghost", onclick: () => void signOut() }, "Sign out"),
    ),
  );
  dialog.querySelector<HTMLButtonElement>("button")?.focus();
}

const END_TEXT: Record<string, string> = {
  user_revoked: "It was signed out from another of your devices.",
  user_revoked_others: "Another of your devices chose \u201csign out everywhere else\u201d.",
  sensitive_action: "Your password was changed on another device.",
  admin_revoked: "An administrator signed you out.",
  refresh_reuse: "An old refresh token was used again, which looks like theft, so the session was stopped.",
  risk_policy: "The server's risk policy stopped it.",
};

/** The session ended while the dashboard was open: say why, and offer to sign in again in place. */
function showEnded(ending: Ending, reason?: string): void {
  closeStream();
  if (document.querySelector(".modal-backdrop[data-kind=ended]")) return;
  updateHeader();
  tick();
  if (ending === "closed") {
    shownSession = null;
    renderSignIn("You signed out. The device key was deleted from this browser.");
    return;
  }
  const title = ending === "revoked" ? "This session was revoked" : "Your session expired";
  const why =
    ending === "revoked"
      ? (END_TEXT[serverReason ?? ""] ?? "It was ended on the server.")
      : reason === "absolute" || (reason === undefined && serverReason === "absolute_lifetime")
        ? "It reached its maximum length."
        : `It ended after ${duration(config.idle_timeout_secs * 1000)} without activity.`;
  const user = me?.user;
  banner(`${title}. ${why}`, ending === "revoked" ? "error" : "warn");
  addTimeline("browser", ending, why, "bad");
  if (!user || !refs.sessionState?.isConnected) {
    renderSignIn(`${title}. ${why}`);
    return;
  }
  const form = credentialsForm({
    user,
    lockUser: true,
    submitLabel: "Sign in again",
    testid: "reauth",
  });
  const dialog = modal(
    "ended",
    h("h2", { "data-testid": "ended-title" }, title),
    h("p", { "data-testid": "ended-reason" }, why),
    h("p", { class: "muted" }, pendingNote || (refs.noteInput as HTMLTextAreaElement | undefined)?.value ? "Your unsaved note is kept." : "Sign in again to continue where you left off."),
    form,
    h("button", { type: "button", class: "link", onclick: () => renderSignIn() }, "Use another account"),
  );
  dialog.querySelector<HTMLInputElement>("input[type=password]")?.focus();
}

async function resumeAfterSignIn(): Promise<void> {
  closeModal();
  banner(null);
  serverReason = null;
  addTimeline("browser", "signed in again", `session ${short(kb.session?.id, 4)}`, "good");
  updateHeader();
  tick();
  await Promise.all([loadMe(), loadOrders(), loadDevices(), loadNotes()]);
  void openStream();
  if (pendingNote !== null) {
    await saveNote();
  }
}

// ---- wiring ------------------------------------------------------------------------

function listen(): void {
  // A new session, from a sign-in form here or in another tab of this browser.
  kb.addEventListener("login", () => void onSignedIn());
  kb.addEventListener("refreshed", () => {
    addTimeline("browser", "refreshed", `new access token until ${clock(kb.session?.accessTokenExpiresAt ?? Date.now())}`);
    const s = kb.session;
    if (s && s.idleExpiresAt - Date.now() > lead() * 1000) closeModal("expiring");
    tick();
  });
  kb.addEventListener("expiring", (e) => {
    const { secondsLeft, reason } = e.detail;
    addTimeline("browser", "expiring", `${reason} end in ${duration(secondsLeft * 1000)}`, "warn");
    if (reason === "idle") showExpiring(secondsLeft);
    else banner(`This session reaches its maximum length in ${duration(secondsLeft * 1000)}; sign in again afterwards.`, "warn");
  });
  kb.addEventListener("revoked", () => showEnded("revoked"));
  kb.addEventListener("expired", (e) => showEnded("expired", e.detail.reason));
  kb.addEventListener("closed", () => {
    addTimeline("browser", "closed", "signed out");
    showEnded("closed");
  });
  kb.addEventListener("error", (e) => {
    addTimeline("browser", "error", `${e.detail.code}: ${e.detail.message}`, "bad");
  });
  byId("sign-out").addEventListener("click", () => void signOut());
  // Using the page counts as activity: the SDK then keeps the session refreshed
  // instead of warning that it is about to end.
  const activity = () => {
    const now = Date.now();
    if (kb.state === "active" && now - lastTouch > 5000) {
      lastTouch = now;
      kb.touch();
    }
  };
  document.addEventListener("keydown", activity, { passive: true });
  document.addEventListener("pointerdown", activity, { passive: true });
  setInterval(tick, 1000);
}

function lead(): number {
  return Math.max(5, Math.min(120, Math.round(config.idle_timeout_secs / 4)));
}

async function main(): Promise<void> {
  const res = await fetch("/api/config");
  config = (await res.json()) as Config;
  if (config.public_origin !== location.origin) {
    // DPoP proofs name the origin; the server only accepts its own.
    location.replace(config.public_origin + location.pathname + location.search);
    return;
  }
  kb = await Keybound.init({ endpoint: "/session", expiringLeadSeconds: lead() });
  // For exploring in the browser's console: `await kb.sessions()`, `kb.session`, ….
  Object.assign(window, { kb });
  listen();
  if (kb.state === "active") {
    await showDashboard();
  } else if (kb.state === "expired") {
    renderSignIn("Your previous session expired. Sign in again.");
  } else {
    renderSignIn();
  }
}

main().catch((error) => {
  fill(app, h("div", { class: "card" }, h("h1", {}, "The demo could not start"), h("p", { class: "form-error" }, errorText(error))));
});
