// The demo's DBSC mode: signing in without the SDK's key, so that the browser binds the
// session with its own key (Device Bound Session Credentials) and is served by a
// short-lived bound cookie it refreshes itself. No keybound code runs in the page for
// this: plain `fetch` calls, the cookie goes along.
import { ago, fill, h, short } from "./dom";

/** A session as `GET /session/sessions` lists it, with how it is bound. */
export interface Device {
  id: string;
  deviceLabel: string | null;
  createdAt: Date | null;
  lastSeenAt: Date | null;
  state: string;
  reason: string | null;
  current: boolean;
  /** `dpop` (the SDK's key), `dbsc` (the browser's key) or `dbsc_pending`. */
  binding: string;
}

/** What each binding means, for the device list. */
export const BINDING_TEXT: Record<string, string> = {
  dpop: "bound by the SDK's key: every request signed (DPoP)",
  dbsc: "bound by the browser's own key: short-lived cookie the browser refreshes (DBSC)",
  dbsc_pending: "signed in, waiting for the browser to register its DBSC key",
};

const seconds = (value: unknown): Date | null => (typeof value === "number" ? new Date(value * 1000) : null);

/** The body of `GET /session/sessions` as devices. */
export function devicesFrom(body: unknown): Device[] {
  const list = (body as { sessions?: Record<string, unknown>[] }).sessions ?? [];
  return list.map((raw) => ({
    id: String(raw.id),
    deviceLabel: typeof raw.device_label === "string" ? raw.device_label : null,
    createdAt: seconds(raw.created_at),
    lastSeenAt: seconds(raw.last_seen_at),
    state: String(raw.state),
    reason: typeof raw.reason === "string" ? raw.reason : null,
    current: raw.current === true,
    binding: typeof raw.binding === "string" ? raw.binding : "dpop",
  }));
}

/** The binding badge of a device. */
export function bindingBadge(binding: string): HTMLElement {
  return h("span", { class: `badge binding binding-${binding}`, "data-testid": "binding", title: BINDING_TEXT[binding] ?? binding }, binding);
}

/** What the DBSC dashboard needs from the rest of the app. */
export interface DbscHost {
  app: HTMLElement;
  /** Back to the sign-in page, with a message. */
  signedOut(message: string): void;
  toast(text: string, kind?: "info" | "error" | "ok"): void;
}

interface Me {
  user: string;
  name: string;
  session_id: string;
  binding: string;
  device_label: string | null;
  jkt: string;
  token_expires_at: number;
}

const json = async (res: Response): Promise<Record<string, unknown>> => {
  try {
    return (await res.json()) as Record<string, unknown>;
  } catch {
    return {};
  }
};

/** The caller, when this browser holds a DBSC-bound session (its cookie); else `null`. */
export async function dbscSession(): Promise<Me | null> {
  const res = await fetch("/api/me", { credentials: "same-origin" });
  if (!res.ok) return null;
  const me = (await res.json()) as Me;
  return me.binding === "dbsc" ? me : null;
}

/**
 * Signs in with DBSC: the credentials go without a DPoP proof, the server answers with
 * `Secure-Session-Registration`, and the browser registers its key and receives the
 * bound cookie. Resolves once the session serves requests; rejects with a readable
 * message when the credentials are wrong or the browser never registers (no DBSC).
 */
export async function signInWithDbsc(username: string, password: string): Promise<Me> {
  const res = await fetch("/api/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const body = await json(res);
  if (!res.ok) {
    throw new Error(body.error === "invalid_credentials" ? "Unknown user or wrong password." : String(body.error_description ?? `The server answered ${res.status}.`));
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const me = await dbscSession();
    if (me) return me;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(
    "This browser did not register a DBSC key: it has no DBSC (Chrome has it; on Linux only behind a switch), " +
      "or the page is not served over trusted HTTPS. Sign in with the SDK's key instead.",
  );
}

/** Shows the dashboard of a DBSC-bound session. */
export async function showDbscDashboard(host: DbscHost, me: Me): Promise<void> {
  const devices = h("div", { "data-testid": "device-list" });
  const orders = h("div", { "data-testid": "orders" });
  const load = async (): Promise<void> => {
    const [list, data] = await Promise.all([
      fetch("/session/sessions", { credentials: "same-origin" }),
      fetch("/api/orders", { credentials: "same-origin" }),
    ]);
    if (list.status === 401 || data.status === 401) {
      const body = await json(list.status === 401 ? list : data);
      host.signedOut(`This session ended (${String(body.error_code ?? "refused")}).`);
      return;
    }
    renderDevices(devices, devicesFrom(await list.json()), revoke);
    const { orders: items } = (await data.json()) as { orders: { id: string; item: string; status: string }[] };
    fill(orders, h("ul", {}, items.map((o) => h("li", {}, h("code", {}, o.id), " ", o.item, " · ", o.status))));
  };
  const revoke = async (id: string): Promise<void> => {
    const res = await fetch(`/session/sessions/${encodeURIComponent(id)}`, { method: "DELETE", credentials: "same-origin" });
    host.toast(res.ok ? "Revoked." : `The server answered ${res.status}.`, res.ok ? "ok" : "error");
    await load();
  };
  const signOut = async (): Promise<void> => {
    await fetch("/session/logout", { method: "POST", credentials: "same-origin" });
    host.signedOut("You signed out. The browser dropped its bound cookie.");
  };
  fill(
    host.app,
    h(
      "div",
      { class: "grid" },
      h(
        "div",
        { class: "col" },
        h(
          "section",
          { class: "card", "data-testid": "dbsc-panel" },
          h("h2", {}, "This session"),
          h(
            "dl",
            { class: "facts" },
            h("dt", {}, "Signed in as"),
            h("dd", { "data-testid": "profile-user" }, `${me.name} (${me.user})`),
            h("dt", {}, "Binding"),
            h("dd", {}, bindingBadge(me.binding), " ", BINDING_TEXT[me.binding] ?? ""),
            h("dt", {}, "Browser key thumbprint"),
            h("dd", {}, h("code", {}, short(me.jkt, 10))),
            h("dt", {}, "Session"),
            h("dd", {}, h("code", {}, short(me.session_id, 8))),
          ),
          h(
            "p",
            { class: "muted" },
            "No keybound code runs in this page: the browser keeps the key, holds a cookie that lives minutes, and refreshes it by signing the server's challenge. Page loads and plain links are protected too.",
          ),
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: "ghost", "data-testid": "dbsc-reload", onclick: () => void load() }, "Reload"),
            h("button", { type: "button", class: "ghost", "data-testid": "dbsc-sign-out", onclick: () => void signOut() }, "Sign out"),
          ),
        ),
      ),
      h("div", { class: "col" }, h("section", { class: "card", "data-testid": "profile" }, h("h2", {}, "Orders"), orders)),
      h(
        "div",
        { class: "col" },
        h(
          "section",
          { class: "card", "data-testid": "devices" },
          h("h2", {}, "Your devices"),
          h("p", { class: "muted" }, "Every session of your account, bound either way. Revoking one ends it at its next request."),
          devices,
        ),
      ),
    ),
  );
  await load();
}

/** The device list of the DBSC dashboard. */
function renderDevices(el: HTMLElement, devices: Device[], revoke: (id: string) => Promise<void>): void {
  const active = devices.filter((d) => d.state === "active");
  fill(
    el,
    h(
      "ul",
      { class: "devices" },
      active.map((d) =>
        h(
          "li",
          { class: `device ${d.current ? "current" : ""} active`, "data-testid": "device", "data-session": d.id, "data-binding": d.binding, "data-current": String(d.current) },
          h(
            "div",
            { class: "device-main" },
            h("strong", {}, d.deviceLabel ?? "Unknown device"),
            bindingBadge(d.binding),
            d.current ? h("span", { class: "badge this-device", "data-testid": "this-device" }, "this device") : null,
          ),
          h("div", { class: "device-meta muted" }, `signed in ${ago(d.createdAt)} · last active ${ago(d.lastSeenAt)} · ${short(d.id, 4)}`),
          d.current ? null : h("button", { type: "button", class: "small danger", "data-testid": "revoke", onclick: () => void revoke(d.id) }, "Revoke"),
        ),
      ),
    ),
  );
}
