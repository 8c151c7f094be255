// What keybound keeps per storage name, in IndexedDB (or, where IndexedDB cannot be
// opened, in this tab's memory):
//   vault:   a non-extractable AES-GCM key that encrypts everything secret below;
//   device:  the device key (a non-extractable WebCrypto Ed25519 or P-256 key, or, with
//            forceWasmKeys, a module key's sealed seed);
//   session: the live session (tokens sealed, deadlines in clear) or a marker saying
//            how the last one ended.
// Records go through the structured clone, which keeps CryptoKeys non-extractable.
import { KeyboundError } from "./error.js";

const KV = "kv";
const VERSION = 1;
const encoder = new TextEncoder();

const storageError = (op, cause) => new KeyboundError("storage_error", `storage error: ${op}`, { cause });
const cryptoError = (op, cause) => new KeyboundError("crypto_error", `crypto operation failed: ${op}`, { cause });
const malformed = () => storageError("stored record is malformed");

function settle(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

/** One IndexedDB database with one object store of keyed records. */
class IdbRecords {
  static async open(name) {
    const request = indexedDB.open(name, 1);
    // Version 1 is the only schema: an upgrade means a new, empty database.
    request.onupgradeneeded = () => request.result.createObjectStore(KV);
    const db = await settle(request);
    // If another tab ever upgrades the schema, step aside instead of blocking it.
    db.onversionchange = () => db.close();
    return new IdbRecords(db);
  }

  constructor(db) {
    this.db = db;
  }

  /** `work(store, tx)` in a new transaction; any failure is a storage error of `op`. */
  #run(mode, op, work) {
    return new Promise((resolve) => {
      const tx = this.db.transaction(KV, mode);
      resolve(work(tx.objectStore(KV), tx));
    }).catch((e) => {
      throw storageError(op, e);
    });
  }

  get(key) {
    return this.#run("readonly", "read", (store) => settle(store.get(key)));
  }

  put(key, value) {
    return this.#run("readwrite", "write", (store, tx) => {
      store.put(value, key);
      return committed(tx);
    });
  }

  /** Writes only if nothing is there; `false` when another tab got there first. */
  add(key, value) {
    return this.#run("readwrite", "write", async (store, tx) => {
      const done = committed(tx);
      const added = await settle(store.add(value, key)).then(
        () => true,
        () => false,
      );
      // A refused add aborts the transaction.
      await done.catch((e) => {
        if (added) throw e;
      });
      return added;
    });
  }

  delete(key) {
    return this.#run("readwrite", "delete", (store, tx) => {
      store.delete(key);
      return committed(tx);
    });
  }
}

/** The same records, for the life of this tab only. */
class MemoryRecords {
  map = new Map();
  async get(key) {
    return this.map.get(key);
  }
  async put(key, value) {
    this.map.set(key, value);
  }
  async add(key, value) {
    if (this.map.has(key)) return false;
    this.map.set(key, value);
    return true;
  }
  async delete(key) {
    this.map.delete(key);
  }
}

let fallbackModule = null;

/**
 * The fallback signer (`pkg/keybound_fallback*`): fetched only when a module key is
 * made or loaded (`forceWasmKeys`), never otherwise.
 */
function fallback() {
  fallbackModule ??= import("./glue/keybound_fallback.js").then(
    async (module) => {
      await module.default();
      return module;
    },
    (error) => {
      fallbackModule = null;
      throw new KeyboundError("unsupported_browser", "unsupported browser: the fallback signer could not load", {
        cause: error,
      });
    },
  );
  return fallbackModule;
}

const bytes = (value) => new Uint8Array(value);
const random = (n) => crypto.getRandomValues(new Uint8Array(n));
const deviceAad = (x) => new Uint8Array([...encoder.encode("keybound/device/"), ...x]);
const sessionAad = (sid, jkt) => encoder.encode(`keybound/session/${sid}/${jkt}`);

function b64url(data) {
  return btoa(String.fromCharCode(...data)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The WebCrypto algorithm of each WebCrypto key kind, for generateKey and sign alike
// (each ignores the other's members). ECDSA signatures come out as the 64-byte r || s
// a JWS carries.
const ALGORITHMS = {
  webcrypto: "Ed25519",
  "webcrypto-p256": { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" },
};

/**
 * A device key: `{kind, x, sign(message) → Promise<Uint8Array>, record}`, `x` its public
 * key as the engine takes it (raw: 32 bytes for Ed25519, `04 || x || y` for P-256),
 * `record` what the storage keeps of it.
 */
function webcryptoKey(subtle, record) {
  const { kind, x, privateKey } = record;
  return { kind, x, record, sign: (message) => subtle.sign(ALGORITHMS[kind], privateKey, message).then(bytes) };
}

function moduleKey(key, record) {
  return { kind: "wasm", x: record.x, record, sign: async (message) => key.sign(message) };
}

/** The SDK's storage for one storage name. */
export class Storage {
  /**
   * Opens the storage (creating the database on first use) and starts reading what
   * start-up needs (see `initial`). Where IndexedDB cannot be opened (Safari's Lockdown
   * Mode, some private modes) the records live in memory for the life of the tab:
   * `persistent` is then `false`.
   *
   * `prepareKind`: when no device key is stored, one of this WebCrypto kind is made at
   * once, while the module compiles; `createKey` uses it only when the engine's order
   * reaches that kind, and stores it only then.
   */
  static async open(name, prepareKind) {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) {
      throw new KeyboundError("unsupported_browser", "unsupported browser: crypto.subtle (a secure context) is not available");
    }
    const records = await IdbRecords.open(name).catch(() => null);
    const storage = new Storage(records ?? new MemoryRecords(), !!records, subtle);
    // The stored session's tokens (and a module key's seed) are decrypted as soon as
    // they arrive. Whoever awaits `initial` sees its failure; until then it is not
    // unhandled.
    (storage.initial = Promise.all([storage.loadSession(), storage.loadKey()])).catch(() => {});
    if (ALGORITHMS[prepareKind]) {
      storage.#prepared = {
        [prepareKind]: storage.initial.then(
          ([, key]) => !key && storage.#webcryptoKey(prepareKind),
          () => null,
        ),
      };
    }
    return storage;
  }

  constructor(records, persistent, subtle) {
    this.records = records;
    this.persistent = persistent;
    this.subtle = subtle;
    this.vaultKey = null;
  }

  /**
   * What start-up needs, read as soon as the storage opened: a promise of `[session,
   * key]` as `loadSession` and `loadKey` give them.
   */
  initial;
  /** `{kind: made}`: the device key made while the module compiled, until taken. */
  #prepared;

  /**
   * The vault key, created when first needed. When several tabs create it at once, the
   * first one written wins and the others use it.
   */
  async vault() {
    for (let i = 0; i < 2 && !this.vaultKey; i++) {
      const existing = await this.records.get("vault");
      if (existing instanceof CryptoKey) {
        this.vaultKey = existing;
        break;
      }
      const key = await this.subtle
        .generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"])
        .catch((e) => {
          throw cryptoError("generate vault key", e);
        });
      if (await this.records.add("vault", key)) this.vaultKey = key;
    }
    if (!this.vaultKey) throw storageError("vault key");
    return this.vaultKey;
  }

  async seal(plain, aad) {
    const iv = random(12);
    const ct = await this.subtle
      .encrypt({ name: "AES-GCM", iv, additionalData: aad }, await this.vault(), plain)
      .catch((e) => {
        throw cryptoError("encrypt", e);
      });
    return { iv, ct };
  }

  /** Decrypts what `seal` made; the caller wipes the plaintext once read. */
  async unseal(sealed, aad) {
    if (!sealed?.iv || !sealed?.ct) throw malformed();
    const plain = await this.subtle
      .decrypt({ name: "AES-GCM", iv: sealed.iv, additionalData: aad }, await this.vault(), sealed.ct)
      .catch((e) => {
        throw cryptoError("decrypt", e);
      });
    return new Uint8Array(plain);
  }

  /** The stored device key, or `null`. */
  async loadKey() {
    const record = await this.records.get("device");
    if (!record || typeof record !== "object") return null;
    // The engine checks the public key's length for its kind.
    const { x } = record;
    if (!(x instanceof Uint8Array)) throw malformed();
    if (ALGORITHMS[record.kind] && record.privateKey instanceof CryptoKey) {
      return webcryptoKey(this.subtle, record);
    }
    if (record.kind === "wasm") {
      const seed = await this.unseal(record.sealed, deviceAad(x));
      const { FallbackKey } = await fallback();
      const key = FallbackKey.from_seed(seed);
      seed.fill(0);
      if (!key || key.public_key().some((b, i) => b !== x[i])) throw malformed();
      return moduleKey(key, record);
    }
    throw malformed();
  }

  /**
   * Makes and stores a device key of the first of `kinds` (the engine's order) this
   * browser can make. If another tab stored a key meanwhile, that one is returned.
   */
  async createKey(kinds) {
    const prepared = this.#prepared;
    this.#prepared = null;
    for (const kind of kinds.split(" ")) {
      const made =
        kind === "wasm"
          ? await this.#moduleKey()
          : (await prepared?.[kind]) || (await this.#webcryptoKey(kind));
      if (!made) continue;
      if (await this.records.add("device", made.record)) return made;
      const stored = await this.loadKey();
      if (stored) return stored;
      throw storageError("store device key");
    }
    throw new KeyboundError("unsupported_browser", "unsupported browser: no device key can be made");
  }

  /**
   * A non-extractable WebCrypto key of `kind`; `null` where this
   * browser cannot make one (Ed25519 before Chrome 137, Firefox 129, Safari 17 refuses
   * with NotSupportedError).
   */
  async #webcryptoKey(kind) {
    try {
      const pair = await this.subtle.generateKey(ALGORITHMS[kind], false, ["sign", "verify"]);
      const x = bytes(await this.subtle.exportKey("raw", pair.publicKey));
      return webcryptoKey(this.subtle, { kind, x, privateKey: pair.privateKey });
    } catch {
      return null;
    }
  }

  /** A module key (`forceWasmKeys`), its seed sealed. */
  async #moduleKey() {
    const { FallbackKey } = await fallback();
    const seed = random(32);
    const key = FallbackKey.from_seed(seed.slice());
    const x = key.public_key();
    const sealed = await this.seal(seed, deviceAad(x));
    seed.fill(0);
    return moduleKey(key, { kind: "wasm", x, sealed });
  }

  deleteKey() {
    return this.records.delete("device");
  }

  /**
   * The `session` record: `{live: {plain, sid, jkt, stamp, numbers}}`, `{ended, sid}`,
   * or `{}`. A record this version cannot read (another layout, a vault key that no
   * longer matches) counts as no session.
   */
  async loadSession() {
    const r = await this.records.get("session");
    if (!r || typeof r !== "object" || r.v !== VERSION) return {};
    const sid = typeof r.sid === "string" ? r.sid : undefined;
    if (typeof r.ended === "string") return { ended: r.ended, sid };
    if (!sid || typeof r.jkt !== "string" || typeof r.stamp !== "string") return {};
    let plain;
    try {
      plain = await this.unseal(r.sealed, sessionAad(sid, r.jkt));
    } catch {
      return {};
    }
    const numbers = [r.offset, r.issuedAt, r.accessExpiresAt, r.idleExpiresAt, r.sessionExpiresAt].map(Number);
    const text = new TextDecoder().decode(plain);
    plain.fill(0);
    return { live: { plain: text, sid, jkt: r.jkt, stamp: r.stamp, numbers } };
  }

  /** Stores the engine's pending tokens; resolves to the record's new stamp. */
  async saveSession(engine) {
    const sid = engine.pending_session_id();
    const jkt = engine.thumbprint();
    const [offset, issuedAt, accessExpiresAt, idleExpiresAt, sessionExpiresAt] = engine.pending_numbers();
    const plain = encoder.encode(engine.pending_sealable());
    const sealed = await this.seal(plain, sessionAad(sid, jkt));
    plain.fill(0);
    const stamp = b64url(random(12));
    await this.records.put("session", {
      v: VERSION,
      sid,
      jkt,
      stamp,
      offset,
      issuedAt,
      accessExpiresAt,
      idleExpiresAt,
      sessionExpiresAt,
      sealed,
    });
    return stamp;
  }

  /**
   * Replaces the session `sid` (tokens included) by a marker saying how it ended. A
   * newer session another tab stored meanwhile is left alone.
   */
  async endSession(terminal, sid) {
    const current = await this.records.get("session");
    if (current && (current.sid !== sid || typeof current.ended === "string")) return;
    await this.records.put("session", { v: VERSION, ended: terminal, sid });
  }

  /** Logout: deletes the device key and the tokens, leaving a `closed` marker. */
  async forget(sid) {
    await this.records.delete("device");
    await this.records.put("session", { v: VERSION, ended: "closed", sid: sid ?? null });
  }
}

export { b64url };
