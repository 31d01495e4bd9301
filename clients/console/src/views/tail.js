// Live tail: the tenant's events as they are committed and what Herald did about it (a
// stream closed as slow, a refused stream, a 429, a failed webhook attempt), newest first,
// filtered by type, user or topic, and paused without losing what comes meanwhile.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";

import { Empty, Problem, recipient, when } from "../ui.js";

/** Re-renders whenever the feed changes (and once on subscribing: it may have changed
 * between the first render and now). */
export function useFeed(feed) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const changed = () => setTick((n) => n + 1);
    const unsubscribe = feed?.subscribe(changed);
    changed();
    return unsubscribe;
  }, [feed]);
  return feed;
}

const NOTICES = {
  stream_closed_slow: (n) => `a stream of ${n.user} could not keep up and was closed (it resumes from the log)`,
  stream_refused: (n) => `a stream of ${n.user} was refused: ${n.reason.replaceAll("_", " ")}`,
  rate_limited: (n) => `a publish of ${n.events} event${n.events === 1 ? "" : "s"} was refused by the rate limit (retry after ${n.retry_after_secs} s)`,
  webhook_failed: (n) => `webhook ${n.type} to ${n.endpoint_id} failed: ${n.status_code ? `HTTP ${n.status_code}` : n.error}`,
};

function matches({ kind, body }, filter) {
  const type = filter.type.trim();
  const user = filter.user.trim();
  const topic = filter.topic.trim();
  if (kind === "notice") return !type && !topic && (!user || body.user === user);
  if (type && body.type !== type) return false;
  if (user && body.to?.user !== user) return false;
  if (topic && body.to?.topic !== topic) return false;
  return true;
}

export function Tail({ feed }) {
  useFeed(feed);
  const [filter, setFilter] = useState({ type: "", user: "", topic: "" });
  const [pausedAt, setPausedAt] = useState(null);
  const set = (field) => (e) => setFilter({ ...filter, [field]: e.currentTarget.value });
  // Paused, the list stays as it was; what arrived since is counted and shown on resume.
  const frames = pausedAt === null ? feed.frames : feed.frames.filter((f) => f.key <= pausedAt);
  const waiting = pausedAt === null ? 0 : feed.frames.filter((f) => f.key > pausedAt).length;
  const shown = frames.filter((f) => matches(f, filter));
  const status = { connecting: "connecting…", open: "live", ended: "ended; reconnecting…", failed: "stopped" }[feed.status];
  return html`
    <h1 tabindex="-1">Live tail of ${feed.tenant}</h1>
    <p class="status" role="status">Tail: <strong>${status}</strong>
      ${feed.dropped > 0 && html` · ${feed.dropped} frame${feed.dropped === 1 ? "" : "s"} dropped (this page read too slowly)`}</p>
    <${Problem} error=${feed.error} />
    <form class="inline" onSubmit=${(e) => e.preventDefault()} aria-label="Filter the tail">
      <label>Type<input value=${filter.type} onInput=${set("type")} placeholder="mail" /></label>
      <label>User<input value=${filter.user} onInput=${set("user")} placeholder="alice" /></label>
      <label>Topic<input value=${filter.topic} onInput=${set("topic")} placeholder="news" /></label>
      <button type="button" aria-pressed=${pausedAt !== null}
        onClick=${() => setPausedAt(pausedAt === null ? feed.frames[0]?.key ?? 0 : null)}>
        ${pausedAt === null ? "Pause" : `Resume (${waiting} new)`}</button>
    </form>
    ${shown.length === 0
      ? html`<${Empty}>${frames.length === 0
          ? html`Nothing yet — events appear here as they are committed. <a href="#/send">Send a test notification</a>.`
          : "Nothing matches the filter."}</${Empty}>`
      : html`<ol class="tail" aria-label="Events and notices, newest first">
          ${shown.map((frame) => html`<li key=${frame.key} class=${frame.kind}><${Frame} frame=${frame} /></li>`)}
        </ol>`}`;
}

function Frame({ frame: { kind, body } }) {
  if (kind === "notice") {
    const say = NOTICES[body.kind];
    return html`<details><summary><span class="time">${when(body.at)}</span>${" "}
        <span class="badge notice">Herald</span> ${say ? say(body) : body.kind}</summary>
      <pre>${JSON.stringify(body, null, 2)}</pre></details>`;
  }
  return html`<details><summary><span class="time">${when(body.created_at)}</span>${" "}
      <span class="badge">${body.type}</span> to ${recipient(body.to)}${body.inbox ? " (inbox)" : ""}
      · <span class="mono id">${body.id}</span> · <span class="size">${body.size} B</span></summary>
    <pre>${JSON.stringify(body.data, null, 2)}</pre></details>`;
}
