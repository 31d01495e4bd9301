// The one error type: what Herald answered (its status, code, message and, for a batch, the
// index of the event at fault), or that it could not be reached.

export class HeraldError extends Error {
  /** The HTTP status; `null` when Herald did not answer (`code` `unreachable` or `timeout`). */
  readonly status: number | null;
  readonly code: string;
  /** For a batch: the index of the first event that broke a rule. */
  readonly index: number | null;
  /** Seconds Herald asked the caller to wait (`Retry-After`), when it said. */
  readonly retryAfter: number | null;

  constructor(status: number | null, code: string, message: string, index: number | null = null, retryAfter: number | null = null) {
    super(status === null ? `${code}: ${message}` : `${status} ${code}: ${message}`);
    this.name = "HeraldError";
    this.status = status;
    this.code = code;
    this.index = index;
    this.retryAfter = retryAfter;
  }

  static fromAnswer(status: number, body: unknown, retryAfter: number | null): HeraldError {
    const error = (body as { error?: { code?: string; message?: string; index?: number } } | null)?.error ?? {};
    return new HeraldError(status, error.code ?? `http_${status}`, error.message ?? `Herald answered ${status}`, error.index ?? null, retryAfter);
  }
}

/** A webhook message that is not Herald's: a wrong or missing signature, or a timestamp
 * outside the tolerance. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}
