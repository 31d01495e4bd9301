// How a call reaches Herald: one request, sent again where that is safe. A 429 is always
// sent again (Herald did nothing); a 503, a timeout or a lost connection only when the call
// is safe to repeat (reads, and publishes, which carry an Idempotency-Key). Herald's
// `Retry-After` is honoured; otherwise the wait doubles from `firstWait`, with jitter, up to
// `attempts` sends in all.

import { HeraldError } from "./errors.js";

export interface Retries {
  /** Sends in all, the first included (default 4). */
  attempts?: number;
  /** Seconds before the second send, doubling after (default 0.25). */
  firstWait?: number;
  /** A `Retry-After` longer than this many seconds is not waited for (default 30). */
  longestWait?: number;
}

export interface ClientOptions {
  /** Seconds one request may take (default 10). */
  timeout?: number;
  retries?: Retries;
  /** Another `fetch` (tests, proxies). */
  fetch?: typeof fetch;
}

export interface Call {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  path: string;
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
  headers?: Record<string, string>;
  /** Whether sending it again after a 503 or a lost connection cannot do it twice. */
  repeatable?: boolean;
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

export class Transport {
  readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeout: number;
  private readonly retries: Required<Retries>;
  private readonly fetch: typeof fetch;

  constructor(url: string, credential: string, options: ClientOptions = {}, heraldTenant?: string) {
    this.base = url.replace(/\/+$/, "");
    this.headers = { Authorization: `Bearer ${credential}`, "User-Agent": "herald-server-node" };
    if (heraldTenant) this.headers["Herald-Tenant"] = heraldTenant;
    this.timeout = options.timeout ?? 10;
    this.retries = { attempts: 4, firstWait: 0.25, longestWait: 30, ...options.retries };
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  url(path: string, query?: Call["query"]): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const text = params.toString();
    return `${this.base}${path}${text ? `?${text}` : ""}`;
  }

  /** The JSON answer (`null` for 204), or the HeraldError Herald's answer is. */
  async run<T = any>(call: Call): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let failure: HeraldError;
      try {
        return await this.once<T>(call);
      } catch (error) {
        if (!(error instanceof HeraldError)) throw error;
        failure = error;
      }
      const wait = this.nextWait(call, failure, attempt);
      if (wait === null) throw failure;
      await sleep(wait);
    }
  }

  /** A streaming GET (the live tail): the response, once Herald answered 2xx. */
  async stream(path: string, signal?: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await this.fetch(this.url(path), { headers: this.headers, signal });
    } catch (error) {
      throw new HeraldError(null, "unreachable", `Herald could not be reached: ${(error as Error).message}`);
    }
    if (!response.ok) throw HeraldError.fromAnswer(response.status, await response.json().catch(() => null), null);
    return response;
  }

  private async once<T>(call: Call): Promise<T> {
    const headers: Record<string, string> = { ...this.headers, ...call.headers };
    if (call.body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetch(this.url(call.path, call.query), {
        method: call.method,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        signal: AbortSignal.timeout(this.timeout * 1000),
      });
    } catch (error) {
      const name = (error as Error).name;
      if (name === "TimeoutError") throw new HeraldError(null, "timeout", `Herald did not answer within ${this.timeout} s`);
      throw new HeraldError(null, "unreachable", `Herald could not be reached: ${(error as Error).message}`);
    }
    const text = await response.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
    }
    if (response.ok) return body as T;
    const retryAfter = Number(response.headers.get("retry-after"));
    throw HeraldError.fromAnswer(response.status, body, response.headers.has("retry-after") && Number.isFinite(retryAfter) ? retryAfter : null);
  }

  private nextWait(call: Call, error: HeraldError, attempt: number): number | null {
    const { attempts, firstWait, longestWait } = this.retries;
    if (attempt >= attempts) return null;
    // A 429 did nothing; a key still in flight is a first attempt whose answer was lost.
    const again =
      error.status === 429 ||
      error.code === "idempotency_key_in_flight" ||
      ((call.repeatable ?? true) && (error.status === 503 || error.status === null));
    if (!again) return null;
    if (error.retryAfter !== null) return error.retryAfter <= longestWait ? error.retryAfter : null;
    return Math.min(firstWait * 2 ** (attempt - 1), longestWait) * (0.5 + Math.random() / 2);
  }
}
