// Webhooks: the tenant's endpoints — add one (its signing secret shown once), change its
// URL, message types or description, disable or enable it, rotate its secret, send a test
// message, remove it — and for each, its deliveries with every attempt, any one retried now.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { del, get, patch, post, query } from "../api.js";
import { Empty, Pager, Problem, ShownOnce, Table, useAction, useLoad, usePages, when } from "../ui.js";

const PAGE = 20;

function types(text) {
  const list = text.split(",").map((s) => s.trim()).filter(Boolean);
  return list.length ? list : ["*"];
}

export function Webhooks({ tenant }) {
  const endpoints = useLoad(() => get("/v1/webhooks", { tenant }), [tenant]);
  const [open, setOpen] = useState(null);
  const [secret, setSecret] = useState(null);
  const list = endpoints.data?.webhooks || [];
  return html`
    <h1 tabindex="-1">Webhooks</h1>
    <${Problem} error=${endpoints.error} />
    ${secret && html`<${ShownOnce} label=${secret.label} value=${secret.value} />`}
    ${endpoints.data && (list.length === 0
      ? html`<${Empty}>No webhook yet — add one below, and Herald posts presence, fallbacks and test messages to it.</${Empty}>`
      : html`<${Table} caption="Webhook endpoints"><thead><tr><th scope="col">URL</th><th scope="col">Message types</th>
          <th scope="col">State</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>${list.map((w) => html`<tr><th scope="row" class="mono">${w.url}</th><td>${w.events.join(", ")}</td>
            <td>${w.disabled_at ? `disabled (${w.disabled_reason})` : "enabled"}</td>
            <td><button type="button" onClick=${() => setOpen(w.id)}>Open<span class="sr"> ${w.url}</span></button></td></tr>`)}
          </tbody></${Table}>`)}
    ${open && html`<${Endpoint} key=${open} tenant=${tenant} id=${open} onSecret=${setSecret}
      onChanged=${endpoints.reload} onRemoved=${() => { setOpen(null); endpoints.reload(); }} onClose=${() => setOpen(null)} />`}
    <${AddEndpoint} tenant=${tenant} onAdded=${(w) => { setSecret({ label: `Signing secret of ${w.url}`, value: w.secret }); setOpen(w.id); endpoints.reload(); }} />`;
}

function AddEndpoint({ tenant, onAdded }) {
  const [form, setForm] = useState({ url: "", events: "*", description: "" });
  const action = useAction();
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    const body = { url: form.url.trim(), events: types(form.events) };
    if (form.description.trim()) body.description = form.description.trim();
    const added = await action.run(() => post("/v1/webhooks", body, { tenant }));
    if (added) {
      setForm({ url: "", events: "*", description: "" });
      onAdded(added);
    }
  };
  return html`<section aria-labelledby="add-webhook">
    <h2 id="add-webhook">Add an endpoint</h2>
    <form class="grid" onSubmit=${submit}>
      <label class="wide">URL<input type="url" required value=${form.url} onInput=${set("url")} placeholder="https://api.acme.com/herald" /></label>
      <label>Message types (comma separated, * for all)<input value=${form.events} onInput=${set("events")} /></label>
      <label>Description<input value=${form.description} onInput=${set("description")} /></label>
      <button type="submit" disabled=${action.busy}>Add endpoint</button>
    </form>
    <${Problem} error=${action.error} />
  </section>`;
}

function Endpoint({ tenant, id, onSecret, onChanged, onRemoved, onClose }) {
  const path = `/v1/webhooks/${encodeURIComponent(id)}`;
  const endpoint = useLoad(() => get(path, { tenant }), [id]);
  const action = useAction();
  const [note, setNote] = useState(null);
  const act = async (work, done) => {
    setNote(null);
    const result = await action.run(work);
    if (result !== undefined) {
      done?.(result);
      endpoint.reload();
      onChanged();
    }
  };
  const w = endpoint.data;
  return html`<section class="detail" aria-labelledby="endpoint">
    <h2 id="endpoint">Endpoint ${w ? w.url : ""}</h2>
    <button type="button" class="close" onClick=${onClose}>Close<span class="sr"> endpoint</span></button>
    <${Problem} error=${endpoint.error || action.error} />
    ${note && html`<p role="status" class="ok">${note}</p>`}
    ${w && html`
      <${EditEndpoint} key=${w.url + w.events.join()} endpoint=${w} onSave=${(body) => act(() => patch(path, body, { tenant }), () => setNote("Saved."))} />
      <div class="buttons">
        <button type="button" onClick=${() => act(() => patch(path, { disabled: !w.disabled_at }, { tenant }))}>
          ${w.disabled_at ? "Enable" : "Disable"}</button>
        <button type="button" onClick=${() => act(() => post(`${path}/rotate-secret`, undefined, { tenant }),
          (r) => onSecret({ label: `New signing secret of ${w.url} (the old one signs too for 24 h)`, value: r.secret }))}>Rotate secret</button>
        <button type="button" onClick=${() => act(() => post(`${path}/test`, undefined, { tenant }),
          (r) => setNote(`Test message ${r.message_id} is on its way.`))}>Send test</button>
        <button type="button" class="danger" onClick=${async () => {
          if (confirm(`Remove the endpoint ${w.url}?`) && (await action.run(() => del(path, { tenant }))) !== undefined) onRemoved();
        }}>Remove</button>
      </div>
      <${Deliveries} tenant=${tenant} path=${path} />`}
  </section>`;
}

function EditEndpoint({ endpoint, onSave }) {
  const [form, setForm] = useState({ url: endpoint.url, events: endpoint.events.join(", "), description: endpoint.description || "" });
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.value });
  const submit = (event) => {
    event.preventDefault();
    onSave({ url: form.url.trim(), events: types(form.events), description: form.description });
  };
  return html`<form class="grid" onSubmit=${submit} aria-label="Edit the endpoint">
    <label class="wide">URL<input type="url" required value=${form.url} onInput=${set("url")} /></label>
    <label>Message types<input value=${form.events} onInput=${set("events")} /></label>
    <label>Description<input value=${form.description} onInput=${set("description")} /></label>
    <button type="submit">Save endpoint</button>
  </form>`;
}

function Deliveries({ tenant, path }) {
  const pages = usePages();
  const deliveries = useLoad(
    () => get(`${path}/deliveries${query({ limit: PAGE, before: pages.cursor })}`, { tenant }),
    [path, pages.cursor],
  );
  const action = useAction();
  const retry = async (message) => {
    if ((await action.run(() => post(`${path}/deliveries/${encodeURIComponent(message.message_id)}/retry`, undefined, { tenant }))) !== undefined) {
      // The attempt is made now; its outcome is recorded a moment later.
      setTimeout(deliveries.reload, 1000);
    }
  };
  const list = deliveries.data?.deliveries || [];
  return html`<section aria-labelledby="deliveries">
    <h3 id="deliveries">Deliveries</h3>
    <${Problem} error=${deliveries.error || action.error} />
    ${deliveries.data && (list.length === 0
      ? html`<${Empty}>No message sent to this endpoint yet — “Send test” sends one.</${Empty}>`
      : html`<ol class="deliveries">${list.map((m) => html`<li>
          <p><span class="mono">${m.message_id}</span> <span class="badge">${m.type}</span>
            <strong class=${`state ${m.status}`}>${m.status}</strong>
            ${m.next_attempt_at && html` · next attempt ${when(m.next_attempt_at)}`}
            <button type="button" onClick=${() => retry(m)}>Retry<span class="sr"> ${m.message_id}</span></button></p>
          ${m.attempts.length > 0 && html`<${Table} caption=${`Attempts of ${m.message_id}`}><thead><tr><th scope="col">When</th>
            <th scope="col">Status</th><th scope="col">Error</th><th scope="col">Duration</th></tr></thead>
            <tbody>${m.attempts.map((a) => html`<tr><th scope="row">${when(a.at)}</th><td>${a.status_code ?? "—"}</td>
              <td>${a.error || "—"}</td><td>${a.duration_ms} ms</td></tr>`)}</tbody></${Table}>`}
        </li>`)}</ol>`)}
    <${Pager} label="Delivery pages" next=${deliveries.data?.next} hasPrevious=${pages.hasPrevious}
      onNext=${() => pages.next(deliveries.data.next)} onPrevious=${pages.previous} />
    <button type="button" onClick=${deliveries.reload}>Refresh<span class="sr"> deliveries</span></button>
  </section>`;
}
