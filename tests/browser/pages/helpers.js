// Helpers the tests call inside the page.

const decoder = new TextDecoder();

export function b64urlDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

export function b64urlEncode(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const ES256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/**
 * Parses a DPoP proof and checks its signature with WebCrypto (independent of the SDK):
 * `EdDSA` with Ed25519, `ES256` with ECDSA P-256 (the JWS signature is `r || s`, which
 * WebCrypto verifies as is). `jkt` is the RFC 7638 thumbprint of the header's key.
 */
export async function inspectProof(proof) {
  const [h, p, s] = proof.split(".");
  const header = JSON.parse(decoder.decode(b64urlDecode(h)));
  const claims = JSON.parse(decoder.decode(b64urlDecode(p)));
  const algorithm = header.alg === "ES256" ? ES256 : { name: "Ed25519" };
  const key = await crypto.subtle.importKey("jwk", header.jwk, algorithm, false, ["verify"]);
  const valid = await crypto.subtle.verify(algorithm, key, b64urlDecode(s), new TextEncoder().encode(`${h}.${p}`));
  const members = header.jwk.kty === "EC" ? ["crv", "kty", "x", "y"] : ["crv", "kty", "x"];
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, header.jwk[m]])));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  return { header, claims, valid, jkt: b64urlEncode(new Uint8Array(digest)) };
}

/** `ath` of an access token. */
export async function accessTokenHash(token) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return b64urlEncode(new Uint8Array(digest));
}

/** Reads one record of the SDK's IndexedDB storage, described as plain data. */
export function readRecord(storageName, key) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(storageName);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains("kv")) {
        db.close();
        resolve(null);
        return;
      }
      const get = db.transaction("kv").objectStore("kv").get(key);
      get.onerror = () => reject(get.error);
      get.onsuccess = () => {
        db.close();
        resolve(get.result ?? null);
      };
    };
  });
}

/** What the device-key record holds, and whether its private key can be exported. */
export async function describeDeviceKey(storageName) {
  const record = await readRecord(storageName, "device");
  if (!record) return null;
  const out = { kind: record.kind, fields: Object.keys(record).sort() };
  if (record.privateKey) {
    out.extractable = record.privateKey.extractable;
    out.algorithm = record.privateKey.algorithm.name;
    out.namedCurve = record.privateKey.algorithm.namedCurve;
    out.usages = record.privateKey.usages;
    out.exportable = await crypto.subtle.exportKey("pkcs8", record.privateKey).then(
      () => true,
      () => false,
    );
  }
  return out;
}

/** The session record as plain data, with every string it holds. */
export async function describeSession(storageName) {
  const record = await readRecord(storageName, "session");
  if (!record) return null;
  const strings = [];
  const walk = (value) => {
    if (typeof value === "string") strings.push(value);
    else if (value && typeof value === "object" && !(value instanceof ArrayBuffer) && !ArrayBuffer.isView(value))
      Object.values(value).forEach(walk);
  };
  walk(record);
  return { fields: Object.keys(record).sort(), ended: record.ended ?? null, strings };
}

/** Runs `fn` and returns `{ok, value}` or the error as plain data (with `code`). */
export async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    return {
      ok: false,
      name: error?.name,
      code: error?.code,
      status: error?.status,
      retryAfter: error?.retryAfter,
      message: error?.message,
      isKeyboundError: error instanceof window.KeyboundError,
    };
  }
}
