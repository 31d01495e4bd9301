// Type declarations for herald.js, the browser client for Herald.

/** What a stream is doing; tabs that share one stream all show its state. */
export type State = "connecting" | "open" | "reconnecting" | "closed";

/** An event as it came off the stream. */
export interface HeraldEvent {
  /** The event type (`message` when the publisher gave none). */
  type: string;
  /** The event id, `<epoch>-<seq>` (for `inbox`, the stream's position). */
  id: string;
  /** The data as sent: text (JSON for anything but a string). */
  data: string;
}

/** Herald's own event types and what their listeners receive. */
export interface BuiltInEvents {
  /** The user's unread count: after the replay, and whenever it changes. */
  inbox: { unread: number };
  /** The resume position could not be resumed from: refetch your state. */
  reset: { reason: "malformed_id" | "unknown_epoch" | "id_in_the_future" | "history_expired" };
}

/** Connection options. */
export interface ConnectOptions {
  /** Herald's base URL, e.g. `https://herald.example.com`. */
  url: string;
  /** The tenant's slug. */
  tenant: string;
  /**
   * A user token (a JWT from the tenant's backend), or a function that fetches a fresh one;
   * with a function the session is renewed before the token expires.
   */
  token: string | (() => string | Promise<string>);
  /** Topics to subscribe to (the token's `topics` claim must allow them). */
  topics?: string[];
  /** Share one stream among this origin's tabs (default `true`). */
  share?: boolean;
  /**
   * Resume after this event id (one the page kept from an earlier visit, say); by default
   * the stream starts at the log's head. An id Herald can no longer resume from brings `reset`.
   */
  lastEventId?: string;
  /**
   * Tell Herald an event was seen when it is handed to a listener while the page is
   * visible (default `true`). With `false`, only what `seen(ids)` names counts as seen;
   * "delivered" is told either way.
   */
  autoSeen?: boolean;
}

/** One page of the user's inbox, newest first. */
export interface InboxPage {
  items: InboxItem[];
  /** The `before` of the next page; `null` on the last. */
  next: string | null;
  /** The user's unread count. */
  unread: number;
}

export interface InboxItem {
  id: string;
  type: string;
  data: unknown;
  read: boolean;
  /** When it was stored (RFC 3339). */
  created_at: string;
}

/** What a read or unread answers: the count after it. */
export interface UnreadCount {
  unread: number;
}

export interface Inbox {
  /** A page of the inbox; `before` is the previous page's `next`. */
  list(options?: { unread?: boolean; limit?: number; before?: string }): Promise<InboxPage>;
  /** Marks items read (at most 1,000 ids; ids that are not the user's items are ignored). */
  read(ids: string[]): Promise<UnreadCount>;
  /** Marks every item up to now read. */
  readAll(): Promise<UnreadCount>;
  /** Marks items unread again. */
  unread(ids: string[]): Promise<UnreadCount>;
}

export interface Herald {
  /** Listens for `state` changes. */
  on(type: "state", listener: (state: State) => void): () => void;
  /** Listens for failed attempts to connect (they are retried). */
  on(type: "error", listener: (error: Error) => void): () => void;
  on<K extends keyof BuiltInEvents>(
    type: K,
    listener: (data: BuiltInEvents[K], event: HeraldEvent) => void,
  ): () => void;
  /** Listens for events of a type; `data` is parsed when it is JSON. Returns an unsubscribe. */
  on<T = any>(type: string, listener: (data: T, event: HeraldEvent) => void): () => void;
  off(type: string, listener: (...args: any[]) => void): void;
  /** The connection's state. */
  readonly state: State;
  /** The last event id handed to listeners (or the stream's position), or `null`. */
  readonly lastEventId: string | null;
  /** The user's notification inbox. */
  readonly inbox: Inbox;
  /**
   * Tells Herald the user saw these events (sent with the next receipt, through the tab
   * that holds the shared stream). Ids that are not the user's events are ignored.
   */
  seen(ids: string[]): void;
  /** Ends the stream (another tab takes it over if it shares it) and stops renewing. */
  close(): void;
}

/** Connects to Herald: posts the session, opens the stream, renews the token. */
export function connect(options: ConnectOptions): Herald;

/** A request Herald refused. */
export class HeraldError extends Error {
  readonly status: number;
  /** Herald's error code, e.g. `invalid_inbox`. */
  readonly code: string | undefined;
  constructor(status: number, body: unknown);
}
