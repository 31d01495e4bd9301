// herald.js — the browser client for Herald (https://github.com/…/herald, docs/browser-library.md).
//
// `connect()` posts the session, opens the EventSource with credentials and hands each event
// to the listeners of its type. It renews the user's token before it expires (and when the
// stream says `session-expired`), switching to a stream opened with the new token from the
// last id seen, so that nothing is lost or repeated. Tabs of one origin that connect to the
// same Herald, tenant, user and topics share one stream: the tab holding a Web Lock named
// after them holds the connection and passes what it receives to the others over a
// BroadcastChannel; when it closes or is frozen, the next tab in the lock's queue resumes
// from the last id it saw. Every tab drops an event whose id is not after the last it
// handed out, so a takeover or a renewal repeats nothing. Without Web Locks or
// BroadcastChannel each tab holds its own stream.
//
// Receipts go through the leading tab too: it tells Herald how far its stream got
// ("delivered") and which events any tab handed to a listener while visible ("seen", or
// only what `seen(ids)` names with `autoSeen: false`), at most one request a second and
// none when nothing is new.

/** A refused request: `status`, and Herald's error `code` (`invalid_inbox`, …) when it sent one. */
export class HeraldError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `Herald answered ${status}`);
    this.name = "HeraldError";
    this.status = status;
    this.code = body?.error?.code;
  }
}

/** The claims of a JWT (not verified: Herald does that). */
const claims = (token) => {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
};

/** Whether event id `a` (`<epoch>-<seq>`) comes after `b`; an id of another epoch does. */
const after = (a, b) => {
  if (!b) return true;
  const i = a.lastIndexOf("-");
  const j = b.lastIndexOf("-");
  if (a.slice(0, i) !== b.slice(0, j)) return true;
  const x = a.slice(i + 1);
  const y = b.slice(j + 1);
  return x.length === y.length ? x > y : x.length > y.length;
};

const parse = (data) => {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
};

/** How long before a token's expiry it is renewed: a quarter of its life, 1–60 s (and never
 * before half of it has passed, nor within a second of the last renewal). */
const margin = (lifeMs) => Math.min(60000, Math.max(1000, lifeMs / 4));

export function connect({ url, tenant, token, topics = [], share = true, lastEventId = null, autoSeen = true }) {
  const base = `${url.replace(/\/+$/, "")}/t/${encodeURIComponent(tenant)}`;
  const topicList = [...new Set(topics)].sort();
  const listeners = new Map();
  // Event types some tab listens for: the leader listens on its stream for all of them.
  const wanted = new Set(["inbox", "reset"]);
  let state;
  let position = lastEventId; // the last id handed out (or that the stream moved to)
  let inbox; // the last `inbox` event's data, for tabs that join later
  let current; // {token, exp, issued}
  let source; // the stream events are taken from
  let spare; // a stream opened to replace it (renewal, reconnect), until it opens
  let leading = false;
  let closed = false;
  let run = 0; // bumped by each start and stop: an older start's awaits then give up
  let failures = 0;
  let timer;
  let channel;
  let resign; // ends this tab's leadership (releases the lock)
  let queue; // aborts this tab's place in the lock's queue
  let got; // the last id the leading tab's stream delivered
  let told; // the last delivered id Herald was told
  const seen = new Set(); // ids seen that Herald was not told yet (the leader's)
  let sentAt = 0;
  let pending; // the timer of the next receipt

  const emit = (type, data, event) => {
    for (const listener of listeners.get(type) || []) {
      try {
        listener(data, event);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  };

  const setState = (next) => {
    if (next === state) return;
    state = next;
    if (leading) channel?.postMessage({ s: next });
    emit("state", next);
  };

  /** Hands one event to this tab's listeners (and, leading, to the other tabs'). */
  const take = (type, id, data) => {
    if (type === "inbox") {
      inbox = data;
      if (id && after(id, position)) position = id;
    } else if (type === "reset") {
      position = id;
    } else if (id && !after(id, position)) {
      return;
    } else {
      position = id;
    }
    if (leading) {
      channel?.postMessage({ t: type, i: id, d: data });
      if (id && type !== "inbox" && type !== "reset") got = id;
      receipt();
    }
    emit(type, parse(data), { type, id, data });
    if (autoSeen && id && listeners.get(type)?.size && type !== "inbox" && type !== "reset" && document.visibilityState === "visible") {
      see([id]);
    }
  };

  /** Ids seen in this tab: the leader keeps them for its next receipt, others pass them on. */
  const see = (ids) => {
    if (!leading) return channel?.postMessage({ r: ids });
    for (const id of ids) seen.add(id);
    receipt();
  };

  /** Sends a receipt when something is new, a second after the last one at the soonest. */
  const receipt = () => {
    if (!leading || pending || (!seen.size && (!got || got === told))) return;
    pending = setTimeout(async () => {
      const body = {};
      if (got && got !== told) body.delivered = got;
      if (seen.size) body.seen = [...seen].slice(0, 1000);
      for (const id of body.seen || []) seen.delete(id);
      sentAt = Date.now();
      try {
        await request("/receipts", body);
        told = body.delivered || told;
      } catch (error) {
        // Kept for the next one unless Herald refused them for good.
        if (!(error.status < 500)) for (const id of body.seen || []) seen.add(id);
      }
      pending = undefined;
      receipt();
    }, Math.max(0, sentAt + 1000 - Date.now()));
  };

  /** A token with time left, asking `token()` for a new one when `renew` or it is due. */
  const fresh = async (renew) => {
    if (renew || !current || Date.now() >= current.renewAt) {
      const value = (typeof token === "function" ? await token() : token).trim();
      const { sub, exp, iat } = claims(value);
      // Its lifetime by its own claims where it can (this clock may be off from Herald's).
      let life = exp ? (exp - (iat || Date.now() / 1000)) * 1000 : Infinity;
      if (!(life > 0)) life = 60000;
      current = { token: value, sub, renewAt: Date.now() + Math.max(1000, life / 2, life - margin(life)) };
    }
    return current;
  };

  const request = async (path, body) => {
    const { token: bearer } = await fresh();
    const response = await fetch(base + path, {
      method: body ? "POST" : "GET",
      headers: { Authorization: `Bearer ${bearer}`, ...(body && { "Content-Type": "application/json" }) },
      body: body && JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) throw new HeraldError(response.status, answer);
    return answer;
  };

  const listen = (es, type) =>
    es.addEventListener(type, (e) => {
      if (es === source) take(type, e.lastEventId, e.data);
    });

  const drop = (es) => {
    es.close();
    if (es === source) source = undefined;
    if (es === spare) spare = undefined;
  };

  /** Opens a stream from the last id; it replaces the current one once it is open. */
  const open = () => {
    const query = new URLSearchParams();
    if (topicList.length) query.set("topics", topicList);
    if (position) query.set("lastEventId", position);
    const es = new EventSource(`${base}/stream?${query}`, { withCredentials: true });
    if (spare) drop(spare);
    spare = es;
    for (const type of wanted) listen(es, type);
    es.addEventListener("session-expired", () => {
      drop(es);
      if (!spare) start(true);
    });
    es.onopen = () => {
      if (es === spare) {
        if (source) drop(source);
        source = es;
        spare = undefined;
        failures = 0;
      }
      if (es === source) setState("open");
    };
    es.onerror = () => {
      if (es === source && es.readyState === EventSource.CONNECTING) return setState("reconnecting");
      // Refused for good (its session is gone, Herald answered an error): start over.
      drop(es);
      if (!spare) retry();
    };
  };

  /** Posts a session with a token (a new one when `renew`), then opens a stream with it. */
  const start = async (renew) => {
    const mine = ++run;
    clearTimeout(timer);
    if (!source && state !== "connecting") setState("reconnecting");
    try {
      const { token: bearer, renewAt } = await fresh(renew);
      const response = await fetch(`${base}/session`, {
        method: "POST",
        credentials: "include",
        headers: { Authorization: `Bearer ${bearer}` },
      });
      if (mine !== run) return;
      if (!response.ok) throw new HeraldError(response.status, await response.json().catch(() => null));
      open();
      if (typeof token === "function" && renewAt - Date.now() < 2 ** 31) {
        timer = setTimeout(() => start(true), renewAt - Date.now());
      }
    } catch (error) {
      if (mine !== run) return;
      emit("error", error);
      retry();
    }
  };

  const retry = () => {
    if (!source) setState("reconnecting");
    clearTimeout(timer);
    const wait = Math.min(30000, 500 * 2 ** failures++) * (0.5 + Math.random() / 2);
    timer = setTimeout(() => start(true), wait);
  };

  const stop = () => {
    run++;
    clearTimeout(timer);
    if (source) drop(source);
    if (spare) drop(spare);
  };

  const lead = () =>
    new Promise((resolve) => {
      if (closed) return resolve();
      resign = () => {
        resign = undefined;
        leading = false;
        stop();
        resolve();
      };
      leading = true;
      start(false);
    });

  const hear = ({ data: m }) => {
    for (const type of m.w || []) {
      if (!wanted.has(type)) {
        wanted.add(type);
        if (leading) for (const es of [source, spare]) if (es) listen(es, type);
      }
    }
    if (m.h && leading) channel.postMessage({ w: [...wanted], s: state, p: position, n: inbox });
    if (m.r && leading) see(m.r);
    if (leading) return;
    if (m.t) take(m.t, m.i, m.d);
    if (m.p && after(m.p, position)) position = m.p;
    if (m.n !== undefined && inbox === undefined) take("inbox", m.p, m.n);
    if (m.s) setState(m.s);
  };

  /** Waits for its turn to hold the stream; until then the leader's tab passes events on. */
  const enqueue = () => {
    queue = new AbortController();
    navigator.locks.request(key, { signal: queue.signal }, lead).catch(() => {});
  };

  let key;
  const begin = async () => {
    const sharing = share && globalThis.BroadcastChannel && globalThis.navigator?.locks;
    if (!sharing) return lead();
    try {
      const { sub } = await fresh();
      key = `herald ${base} ${sub} ${topicList}`;
    } catch (error) {
      emit("error", error);
      return lead();
    }
    if (closed) return;
    channel = new BroadcastChannel(key);
    channel.onmessage = hear;
    channel.postMessage({ h: 1, w: [...wanted] });
    enqueue();
    // A frozen tab can pass nothing on: it lets another take over, and queues again.
    document.addEventListener("freeze", () => {
      queue.abort();
      resign?.();
    });
    document.addEventListener("resume", () => closed || enqueue());
  };

  const herald = {
    /** Listens for events of `type` (`state`, `error` and Herald's own types too); returns an unsubscribe. */
    on(type, listener) {
      if (!listeners.has(type)) listeners.set(type, new Set());
      listeners.get(type).add(listener);
      if (type !== "state" && type !== "error" && !wanted.has(type)) {
        wanted.add(type);
        for (const es of [source, spare]) if (es) listen(es, type);
        channel?.postMessage({ w: [type] });
      }
      return () => herald.off(type, listener);
    },
    off(type, listener) {
      listeners.get(type)?.delete(listener);
    },
    get state() {
      return state;
    },
    get lastEventId() {
      return position;
    },
    /** Tells Herald the user saw these events (with `autoSeen: false`, the only way). */
    seen(ids) {
      see(ids);
    },
    inbox: {
      list: ({ unread, limit, before } = {}) => {
        const query = new URLSearchParams();
        if (unread) query.set("unread", "true");
        if (limit) query.set("limit", limit);
        if (before) query.set("before", before);
        return request(`/inbox?${query}`);
      },
      read: (ids) => request("/inbox/read", { ids }),
      readAll: () => request("/inbox/read", { all: true }),
      unread: (ids) => request("/inbox/unread", { ids }),
    },
    close() {
      closed = true;
      queue?.abort();
      if (resign) resign();
      else stop();
      channel?.close();
      channel = undefined;
      setState("closed");
    },
  };
  setState("connecting");
  begin();
  return herald;
}
