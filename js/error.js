// KeyboundError: every error of the SDK, with a stable `code`.

/** An error from keybound; `code` is stable (`network_error`, `session_revoked`, the server's `error_code`, …). */
export class KeyboundError extends Error {
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KeyboundError";
    this.code = code;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
  }
}

/** The error the engine left (`code \n status \n retry-after \n message`). */
export function engineError(text) {
  const [code, status, retryAfter, ...message] = (text ?? "crypto_error\n\n\ninternal error").split("\n");
  const number = (n) => (n ? Number(n) : undefined);
  return new KeyboundError(code, message.join("\n"), { status: number(status), retryAfter: number(retryAfter) });
}

/** The short text of a thrown JavaScript error. */
export const describe = (error) => String(error?.message ?? error ?? "unknown error").slice(0, 200);
