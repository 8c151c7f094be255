// The engine's methods for the driver, over the module's one call
// (`engine_call(handle, number, bytes)`, crates/keybound-client/src/calls): arguments
// and results travel as tagged values (calls/codec.rs), so the module carries no glue
// per method. `NAMES` is the module's numbering (a Rust test compares the two lists).
import { engine_call, engine_free, engine_new } from "./glue/keybound_client.js";
import { engineError } from "./error.js";

const NAMES = [
  "url",
  "take_error",
  "next_event",
  "state",
  "session_id",
  "stamp",
  "deadlines",
  "proof_input",
  "proof_finish",
  "access_token",
  "answer",
  "answer_error",
  "key_kinds",
  "key_jwk",
  "set_key",
  "keep_key",
  "drop_key",
  "thumbprint",
  "key_kind",
  "take_response",
  "pending_sealable",
  "pending_session_id",
  "pending_numbers",
  "adopt_pending",
  "stage_live",
  "stage_ended",
  "stage_nothing",
  "staged_session_id",
  "resume",
  "reload",
  "begin_request",
  "go_on_after_failed_refresh",
  "touch",
  "refresh_plan",
  "refresh_body",
  "refresh_failed",
  "kept_alive",
  "end",
  "tick",
  "on_message",
  "wants_wake",
];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The values as the module reads them: each a tag byte, then its payload. */
function encode(values) {
  let out = new Uint8Array(256);
  let at = 0;
  // A view at the end, with room for `n` more bytes.
  const room = (n) => {
    if (at + n > out.length) {
      const grown = new Uint8Array(2 * (at + n));
      grown.set(out);
      out = grown;
    }
    return new DataView(out.buffer, at);
  };
  for (const value of values) {
    if (value === undefined || value === null) {
      room(1);
      out[at++] = 0;
    } else if (typeof value === "number" || typeof value === "boolean") {
      room(9).setFloat64(1, +value, true);
      out[at] = 1;
      at += 9;
    } else if (Array.isArray(value)) {
      const view = room(5 + 8 * value.length);
      view.setUint32(1, value.length, true);
      value.forEach((n, i) => view.setFloat64(5 + 8 * i, n, true));
      out[at] = 4;
      at += 5 + 8 * value.length;
    } else {
      const bytes = typeof value === "string" ? encoder.encode(value) : new Uint8Array(value);
      room(5 + bytes.length).setUint32(1, bytes.length, true);
      out[at] = typeof value === "string" ? 2 : 3;
      out.set(bytes, at + 5);
      at += 5 + bytes.length;
    }
  }
  return out.subarray(0, at);
}

/** The one value a call returns. */
function decode(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = () => view.getUint32(1, true);
  switch (bytes[0]) {
    case undefined:
    case 0:
      return undefined;
    case 1:
      return view.getFloat64(1, true);
    case 2:
      return decoder.decode(bytes.subarray(5, 5 + length()));
    case 4:
      return Array.from({ length: length() }, (_, i) => view.getFloat64(5 + 8 * i, true));
    default:
      // A call of the wrong shape: a driver bug, never the page's input.
      throw engineError();
  }
}

// An engine the page no longer reaches is dropped in the module too.
const engines = new FinalizationRegistry(engine_free);

/** An engine for `endpoint` (see `Engine::new`), its methods by name. */
export function engine(endpoint, expiringLeadSeconds, allowedOrigins) {
  const handle = engine_new(encode([endpoint, expiringLeadSeconds, allowedOrigins]));
  const methods = {};
  NAMES.forEach((name, number) => {
    methods[name] = (...args) => decode(engine_call(handle, number, encode(args)));
  });
  engines.register(methods, handle);
  return methods;
}
