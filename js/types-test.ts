// Compile-time checks of the public types (`tsc --noEmit -p .`); never run.
import Keybound, {
  KeyboundError,
  type KeyKind,
  type SessionInfo,
  type SessionPage,
  type SessionState,
  type SessionSummary,
} from "./index.js";

async function usage(): Promise<void> {
  const kb = await Keybound.init({
    endpoint: "/session",
    expiringLeadSeconds: 60,
    allowedOrigins: ["https://api.example"],
  });
  const state: SessionState = kb.state;
  const kind: "webcrypto" | "webcrypto-p256" | "wasm" | null = kb.keyKind;
  const p256: KeyKind = "webcrypto-p256";
  // @ts-expect-error: not a key kind
  const unknown: KeyKind = "P-256";
  const info: SessionInfo = await kb.login("/api/login", { body: JSON.stringify({ username: "alice" }) });
  const res: Response = await kb.fetch("/api/me");
  const res2: Response = await kb.fetch(new URL("https://api.example/x"), { method: "POST", body: "{}" });
  kb.addEventListener("expiring", (e) => {
    const left: number = e.detail.secondsLeft;
    const reason: "idle" | "absolute" = e.detail.reason;
    void left;
    void reason;
  });
  kb.addEventListener("error", (e) => {
    const code: string = e.detail.code;
    void code;
  });
  kb.addEventListener("revoked", (e) => void e.detail.sessionId);
  const extended: SessionInfo = await kb.extend();
  kb.touch();
  const list: SessionSummary[] = await kb.sessions();
  const page: SessionPage = await kb.sessionPage({ limit: 20 });
  const next: SessionPage | null = page.nextCursor ? await kb.sessionPage({ cursor: page.nextCursor }) : null;
  void next;
  await kb.revokeSession(list[0].id);
  await kb.revokeOthers();
  const rotated: SessionInfo = await kb.rotate("/api/change-password", {
    body: JSON.stringify({ current_password: "a", new_password: "b" }),
  });
  void rotated;
  const proof: string = await kb.createProof("GET", "https://api.example/x", { nonce: "n" });
  await kb.logout();
  try {
    await kb.fetch("/api/me");
  } catch (e) {
    if (e instanceof KeyboundError && e.code === "not_logged_in") {
      const status: number | undefined = e.status;
      void status;
    }
    if (e instanceof KeyboundError && e.code === "rate_limited") {
      const wait: number | undefined = e.retryAfter;
      void wait;
    }
  }
  void [state, kind, p256, unknown, info, res, res2, extended, proof];
}

// @ts-expect-error: the constructor is private; use Keybound.init.
new Keybound();
// @ts-expect-error: unknown option types are rejected.
Keybound.init({ expiringLeadSeconds: "120" });
// @ts-expect-error: allowedOrigins is a list.
Keybound.init({ allowedOrigins: "https://api.example" });

void usage;
