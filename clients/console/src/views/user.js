// User inspector: for one user id — presence (online, streams, last seen), the inbox
// (unread count, items, read or not), the latest events of their stream, and what happened
// to each of those events with them (delivered, seen, read, fallback).
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { get, query } from "../api.js";
import { Empty, Pager, Problem, Table, useLoad, usePages, when } from "../ui.js";

const PAGE = 20;

export function UserInspector({ tenant }) {
  const [typed, setTyped] = useState("");
  const [user, setUser] = useState("");
  const submit = (event) => {
    event.preventDefault();
    setUser(typed.trim());
  };
  return html`
    <h1 tabindex="-1">User inspector</h1>
    <form class="inline" onSubmit=${submit}>
      <label>User id<input value=${typed} onInput=${(e) => setTyped(e.currentTarget.value)} required /></label>
      <button type="submit">Inspect</button>
    </form>
    ${user
      ? html`<${Inspected} key=${`${tenant}/${user}`} tenant=${tenant} user=${user} />`
      : html`<${Empty}>Type a user id to see whether they are online, their inbox, their latest events and what happened to each.</${Empty}>`}`;
}

function Inspected({ tenant, user }) {
  const presence = useLoad(() => get(`/v1/presence${query({ user })}`, { tenant }), [user]);
  return html`
    <section aria-labelledby="presence">
      <h2 id="presence">Presence</h2>
      <${Problem} error=${presence.error} />
      ${presence.data && html`<dl class="facts">
        <dt>Online</dt><dd>${presence.data.online ? "yes" : "no"}</dd>
        <dt>Streams open</dt><dd>${presence.data.streams}</dd>
        <dt>Last seen</dt><dd>${presence.data.online ? "now" : when(presence.data.last_seen_at)}</dd>
      </dl>`}
      <button type="button" onClick=${presence.reload}>Refresh<span class="sr"> presence</span></button>
    </section>
    <${Inbox} tenant=${tenant} user=${user} />
    <${Events} tenant=${tenant} user=${user} />`;
}

function Inbox({ tenant, user }) {
  const pages = usePages();
  const inbox = useLoad(
    () => get(`/v1/inbox${query({ user, limit: PAGE, before: pages.cursor })}`, { tenant }),
    [user, pages.cursor],
  );
  const items = inbox.data?.items || [];
  return html`<section aria-labelledby="inbox">
    <h2 id="inbox">Inbox${inbox.data ? html` — <span>${inbox.data.unread} unread</span>` : ""}</h2>
    <${Problem} error=${inbox.error} />
    ${inbox.data && (items.length === 0
      ? html`<${Empty}>No inbox item — publish with “Also an inbox item” to add one.</${Empty}>`
      : html`<${Table} caption=${`Inbox of ${user}, newest first`}><thead><tr><th scope="col">When</th><th scope="col">Type</th>
          <th scope="col">Read</th><th scope="col">Data</th></tr></thead>
          <tbody>${items.map((item) => html`<tr><th scope="row">${when(item.created_at)}</th><td>${item.type}</td>
            <td>${item.read ? "read" : "unread"}</td><td class="mono">${JSON.stringify(item.data)}</td></tr>`)}</tbody>
        </${Table}>`)}
    <${Pager} label="Inbox pages" next=${inbox.data?.next} hasPrevious=${pages.hasPrevious}
      onNext=${() => pages.next(inbox.data.next)} onPrevious=${pages.previous} />
  </section>`;
}

function Events({ tenant, user }) {
  const pages = usePages();
  const events = useLoad(async () => {
    const page = await get(`/v1/events${query({ user, order: "newest", limit: PAGE, before: pages.cursor })}`, { tenant });
    // Receipts are a user's own: broadcasts have them, topic events do not.
    const ids = page.events.filter((e) => e.to.topic === undefined).map((e) => e.id);
    const receipts = ids.length
      ? (await get(`/v1/receipts${query({ user, ids: ids.join(",") })}`, { tenant })).receipts
      : [];
    const byId = new Map(receipts.map((r) => [r.id, r]));
    return { ...page, rows: page.events.map((event) => ({ event, receipt: byId.get(event.id) })) };
  }, [user, pages.cursor]);
  const rows = events.data?.rows || [];
  return html`<section aria-labelledby="events">
    <h2 id="events">Latest events of the stream</h2>
    <${Problem} error=${events.error} />
    ${events.data && (rows.length === 0
      ? html`<${Empty}>No event for this user yet — <a href="#/send">send one</a>.</${Empty}>`
      : html`<${Table} caption=${`Events of ${user}'s stream, newest first, with receipts`}><thead><tr>
          <th scope="col">Id</th><th scope="col">Type</th><th scope="col">To</th><th scope="col">Created</th>
          <th scope="col">Delivered</th><th scope="col">Seen</th><th scope="col">Read</th><th scope="col">Fallback</th></tr></thead>
          <tbody>${rows.map(({ event, receipt }) => html`<tr>
            <th scope="row" class="mono">${event.id}</th><td>${event.type}</td>
            <td>${event.to.user !== undefined ? "user" : event.to.topic !== undefined ? `topic ${event.to.topic}` : "broadcast"}</td>
            <td>${when(event.created_at)}</td>
            <td>${when(receipt?.delivered_at)}</td><td>${when(receipt?.seen_at)}</td><td>${when(receipt?.read_at)}</td>
            <td>${fallback(receipt?.fallback)}</td></tr>`)}</tbody>
        </${Table}>`)}
    <${Pager} label="Event pages" next=${events.data?.next} hasPrevious=${pages.hasPrevious}
      onNext=${() => pages.next(events.data.next)} onPrevious=${pages.previous} />
    <button type="button" onClick=${events.reload}>Refresh<span class="sr"> events</span></button>
  </section>`;
}

function fallback(value) {
  if (!value) return "—";
  return `${value.status} (unless ${value.unless}, ${value.after_secs} s)${value.at ? ` ${when(value.at)}` : ""}`;
}
