// KeyboundError: every error of the SDK, with a stable `code`.

/** An error from keybound; `code` is stable (`network_error`, `session_revoked`, the server's `error_code`, …). */
export class KeyboundError extends Error {
  constructor(code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KeyboundError";
    this.code = code;
    this.status = options.status;
  }
}

/** The error the engine left (`code \n status \n message`). */
export function engineError(text) {
  const [code, status, ...message] = (text ?? "crypto_error\n\ninternal error").split("\n");
  return new KeyboundError(code, message.join("\n"), { status: status ? Number(status) : undefined });
}

/** The short text of a thrown JavaScript error. */
export const describe = (error) => String(error?.message ?? error ?? "unknown error").slice(0, 200);
