// A tenant's backend, with one of its API keys: publishing, history, inboxes, presence,
// receipts, fallbacks, webhooks, its own tenant and usage, and the live tail. Results are
// Herald's JSON as docs/api.md shows it.

import { randomUUID } from "node:crypto";

import { HeraldError } from "./errors.js";
import { type ClientOptions, Transport } from "./transport.js";

export type Target = { user: string } | { users: string[] } | { topic: string } | { broadcast: true };

export interface EventIn {
  to: Target;
  type?: string;
  data?: unknown;
  inbox?: boolean;
  fallback?: { after_secs: number; unless?: "delivered" | "seen" | "read" };
}

export interface Published {
  id: string;
  to: Target;
  type: string;
}

export interface StoredEvent {
  id: string;
  to: Target;
  type: string;
  data: unknown;
  created_at: string;
}

export interface TailFrame {
  event: "event" | "notice" | "dropped";
  data: any;
}

const segment = encodeURIComponent;

export class Herald {
  /** Which method covers each API operation; a test holds it to Herald's /openapi.json. */
  static readonly OPERATIONS: Record<string, keyof Herald> = {
    "POST /v1/events": "publish",
    "GET /v1/events": "historyPage",
    "DELETE /v1/events/{id}/fallback": "cancelFallback",
    "GET /v1/receipts": "receipts",
    "GET /v1/inbox": "inbox",
    "POST /v1/inbox/read": "markRead",
    "POST /v1/inbox/unread": "markUnread",
    "GET /v1/presence": "presence",
    "POST /v1/presence": "presenceOf",
    "POST /v1/webhooks": "createWebhook",
    "GET /v1/webhooks": "webhooks",
    "GET /v1/webhooks/{id}": "webhook",
    "PATCH /v1/webhooks/{id}": "updateWebhook",
    "DELETE /v1/webhooks/{id}": "deleteWebhook",
    "POST /v1/webhooks/{id}/rotate-secret": "rotateWebhookSecret",
    "POST /v1/webhooks/{id}/test": "testWebhook",
    "GET /v1/webhooks/{id}/deliveries": "deliveriesPage",
    "POST /v1/webhooks/{id}/deliveries/{message_id}/retry": "retryDelivery",
    "GET /v1/tenant": "tenant",
    "GET /v1/usage": "usage",
    "GET /v1/tail": "tail",
  };

  protected readonly transport: Transport;

  /** `new Herald("https://herald.example.com", "hk_…")`. */
  constructor(url: string, apiKey: string, options: ClientOptions = {}, heraldTenant?: string) {
    this.transport = new Transport(url, apiKey, options, heraldTenant);
  }

  /** Publishes one event or several (committed together, in order); one `{id, to, type}`
   * per recipient stream. The request carries an Idempotency-Key — yours, or one made for
   * this call — and every retry reuses it, so a retry never stores an event twice. */
  async publish(events: EventIn | EventIn[], options: { idempotencyKey?: string } = {}): Promise<Published[]> {
    const body = Array.isArray(events) ? { events } : events;
    const key = options.idempotencyKey ?? `hs-${randomUUID()}`;
    const answer = await this.transport.run({ method: "POST", path: "/v1/events", body, headers: { "Idempotency-Key": key } });
    return answer.events;
  }

  /** One page of what `user`'s stream would replay: `{events, next}`. */
  historyPage(user: string, options: { topics?: string[]; after?: string; before?: string; newestFirst?: boolean; limit?: number } = {}): Promise<{ events: StoredEvent[]; next: string | null }> {
    const query = {
      user,
      topics: options.topics?.join(","),
      after: options.after,
      before: options.before,
      order: options.newestFirst ? "newest" : undefined,
      limit: options.limit,
    };
    return this.transport.run({ method: "GET", path: "/v1/events", query });
  }

  /** Every event of `user`'s stream after `after`, oldest first, page by page. */
  async *history(user: string, options: { topics?: string[]; after?: string; pageSize?: number } = {}): AsyncGenerator<StoredEvent> {
    let after = options.after;
    for (;;) {
      const page = await this.historyPage(user, { topics: options.topics, after, limit: options.pageSize ?? 100 });
      yield* page.events;
      if (!page.next) return;
      after = page.next;
    }
  }

  /** Cancels what is pending of the fallback the publish of `eventId` carried. */
  async cancelFallback(eventId: string): Promise<void> {
    await this.transport.run({ method: "DELETE", path: `/v1/events/${segment(eventId)}/fallback` });
  }

  /** What happened to each event with `user` (1–100 ids), in the order asked. */
  async receipts(user: string, ids: string[]): Promise<any[]> {
    return (await this.transport.run({ method: "GET", path: "/v1/receipts", query: { user, ids: ids.join(",") } })).receipts;
  }

  /** A page of `user`'s inbox, newest first: `{items, unread, next}`. */
  inbox(user: string, options: { before?: string; limit?: number; unreadOnly?: boolean } = {}): Promise<{ items: any[]; unread: number; next: string | null }> {
    const query = { user, before: options.before, limit: options.limit, unread: options.unreadOnly ? true : undefined };
    return this.transport.run({ method: "GET", path: "/v1/inbox", query });
  }

  /** Marks items (or `{everything: true}`, all up to now) read; the unread count after. */
  async markRead(user: string, ids: string[] | { everything: true }): Promise<number> {
    const body = Array.isArray(ids) ? { ids } : { all: true };
    return (await this.transport.run({ method: "POST", path: "/v1/inbox/read", query: { user }, body })).unread;
  }

  /** Marks items unread again; the unread count after. */
  async markUnread(user: string, ids: string[]): Promise<number> {
    return (await this.transport.run({ method: "POST", path: "/v1/inbox/unread", query: { user }, body: { ids } })).unread;
  }

  /** `{user, online, streams, last_seen_at}`. */
  presence(user: string): Promise<{ user: string; online: boolean; streams: number; last_seen_at: string | null }> {
    return this.transport.run({ method: "GET", path: "/v1/presence", query: { user } });
  }

  /** The presence of each of `users` (at most 1,000), in the order asked. */
  async presenceOf(users: string[]): Promise<any[]> {
    return (await this.transport.run({ method: "POST", path: "/v1/presence", body: { users } })).users;
  }

  /** A new endpoint; its `secret` (`whsec_…`) is in this answer only. */
  createWebhook(url: string, events: string[] = ["*"], options: { description?: string } = {}): Promise<any> {
    return this.transport.run({ method: "POST", path: "/v1/webhooks", body: { url, events, ...options }, repeatable: false });
  }

  async webhooks(): Promise<any[]> {
    return (await this.transport.run({ method: "GET", path: "/v1/webhooks" })).webhooks;
  }

  webhook(id: string): Promise<any> {
    return this.transport.run({ method: "GET", path: `/v1/webhooks/${segment(id)}` });
  }

  /** Changes what is given (`disabled: false` enables it again); the endpoint after. */
  updateWebhook(id: string, changes: { url?: string; events?: string[]; description?: string; disabled?: boolean }): Promise<any> {
    return this.transport.run({ method: "PATCH", path: `/v1/webhooks/${segment(id)}`, body: changes });
  }

  async deleteWebhook(id: string): Promise<void> {
    await this.transport.run({ method: "DELETE", path: `/v1/webhooks/${segment(id)}` });
  }

  /** A new secret (the old one signs too for 24 h). */
  async rotateWebhookSecret(id: string): Promise<string> {
    return (await this.transport.run({ method: "POST", path: `/v1/webhooks/${segment(id)}/rotate-secret`, repeatable: false })).secret;
  }

  /** Sends a `webhook.test` message; its message id. */
  async testWebhook(id: string): Promise<string> {
    return (await this.transport.run({ method: "POST", path: `/v1/webhooks/${segment(id)}/test`, repeatable: false })).message_id;
  }

  /** A page of the messages sent to an endpoint, newest first: `{deliveries, next}`. */
  deliveriesPage(id: string, options: { before?: string; limit?: number } = {}): Promise<{ deliveries: any[]; next: string | null }> {
    return this.transport.run({ method: "GET", path: `/v1/webhooks/${segment(id)}/deliveries`, query: options });
  }

  /** Every message sent to an endpoint, newest first, with its attempts. */
  async *deliveries(id: string, options: { pageSize?: number } = {}): AsyncGenerator<any> {
    let before: string | undefined;
    for (;;) {
      const page = await this.deliveriesPage(id, { before, limit: options.pageSize ?? 50 });
      yield* page.deliveries;
      if (!page.next) return;
      before = page.next;
    }
  }

  /** Attempts a message again now, whatever its state. */
  async retryDelivery(id: string, messageId: string): Promise<void> {
    await this.transport.run({ method: "POST", path: `/v1/webhooks/${segment(id)}/deliveries/${segment(messageId)}/retry` });
  }

  /** The tenant this client acts as. */
  tenant(): Promise<any> {
    return this.transport.run({ method: "GET", path: "/v1/tenant" });
  }

  /** The tenant's usage: today, this month, the last 30 days and 48 hours. */
  usage(): Promise<any> {
    return this.transport.run({ method: "GET", path: "/v1/usage" });
  }

  /** The tenant's live tail as it happens — `{event: "event" | "notice" | "dropped", data}`
   * — until Herald ends it (a revoked key, a removed tenant) or `signal` aborts. */
  async *tail(options: { signal?: AbortSignal } = {}): AsyncGenerator<TailFrame> {
    const response = await this.transport.stream("/v1/tail", options.signal);
    if (!response.body) throw new HeraldError(null, "unreachable", "the tail has no body");
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length) yield { event: event as TailFrame["event"], data: JSON.parse(data.join("\n")) };
        }
      }
    } catch (error) {
      if ((error as Error).name !== "AbortError") throw error;
    }
  }
}
