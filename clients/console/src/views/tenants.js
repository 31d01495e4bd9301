// Tenants (operator): the list, paged, with streams open and today's figures; create one;
// and for the one opened, its settings, limits, API keys and signing keys, and removal.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { del, get, patch, post, query } from "../api.js";
import { Empty, Pager, Problem, ShownOnce, Table, useAction, useLoad, usePages, when } from "../ui.js";

const PAGE = 20;

export function Tenants({ current, onChoose }) {
  const pages = usePages();
  const [open, setOpen] = useState(null);
  const list = useLoad(async () => {
    const page = await get(`/admin/tenants${query({ limit: PAGE, after: pages.cursor })}`);
    const usage = await Promise.all(
      page.tenants.map((t) => get(`/admin/tenants/${encodeURIComponent(t.slug)}/usage`).catch(() => null)),
    );
    return { ...page, rows: page.tenants.map((tenant, i) => ({ tenant, usage: usage[i] })) };
  }, [pages.cursor]);
  const created = (slug) => {
    pages.reset();
    list.reload();
    setOpen(slug);
  };
  return html`
    <h1 tabindex="-1">Tenants</h1>
    <${Problem} error=${list.error} />
    ${list.data &&
    (list.data.rows.length === 0 && !pages.hasPrevious
      ? html`<${Empty}>No tenant yet — create the first one below.</${Empty}>`
      : html`<${Table} caption="Tenants">
          <thead><tr><th scope="col">Slug</th><th scope="col">Name</th><th scope="col">Streams open</th>
            <th scope="col">Published today</th><th scope="col">Delivered today</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>${list.data.rows.map(
            ({ tenant, usage }) => html`<tr aria-current=${tenant.slug === current ? "true" : undefined}>
              <th scope="row">${tenant.slug}</th><td>${tenant.name}</td>
              <td>${usage?.streams_open ?? "—"}</td><td>${usage?.published.today ?? "—"}</td>
              <td>${usage?.delivered.today ?? "—"}</td>
              <td class="actions">
                <button type="button" onClick=${() => setOpen(tenant.slug)}>Edit<span class="sr"> ${tenant.slug}</span></button>
                <button type="button" onClick=${() => onChoose(tenant.slug)} disabled=${tenant.slug === current}>
                  ${tenant.slug === current ? "Working with it" : "Work with"}<span class="sr"> ${tenant.slug}</span></button>
              </td></tr>`,
          )}</tbody>
        </${Table}>`)}
    <${Pager} label="Tenant pages" next=${list.data?.next} hasPrevious=${pages.hasPrevious}
      onNext=${() => pages.next(list.data.next)} onPrevious=${pages.previous} />
    ${open && html`<${TenantDetail} key=${open} slug=${open} onClose=${() => setOpen(null)}
      onChanged=${list.reload} onRemoved=${() => { setOpen(null); if (open === current) onChoose(null); pages.reset(); list.reload(); }} />`}
    <${CreateTenant} onCreated=${created} />`;
}

function lines(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

function CreateTenant({ onCreated }) {
  const [form, setForm] = useState({ slug: "", name: "", origins: "" });
  const action = useAction();
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    const body = { slug: form.slug.trim(), allowed_origins: lines(form.origins) };
    if (form.name.trim()) body.name = form.name.trim();
    const tenant = await action.run(() => post("/admin/tenants", body));
    if (tenant) {
      setForm({ slug: "", name: "", origins: "" });
      onCreated(tenant.slug);
    }
  };
  return html`<section aria-labelledby="create-tenant">
    <h2 id="create-tenant">Create a tenant</h2>
    <form class="grid" onSubmit=${submit}>
      <label>Slug<input required value=${form.slug} onInput=${set("slug")} placeholder="acme" /></label>
      <label>Name<input value=${form.name} onInput=${set("name")} placeholder="Acme Inc" /></label>
      <label class="wide">Allowed origins (one per line)<textarea rows="2" value=${form.origins} onInput=${set("origins")}
        placeholder="https://app.acme.com"></textarea></label>
      <button type="submit" disabled=${action.busy}>Create tenant</button>
    </form>
    <${Problem} error=${action.error} />
  </section>`;
}

const LIMITS = [
  ["publish_per_sec", "Publishes per second"],
  ["publish_burst", "Publish burst"],
  ["max_streams", "Streams"],
  ["max_streams_per_user", "Streams per user"],
  ["max_event_data_bytes", "Largest data (bytes)"],
  ["max_stored_events", "Stored events"],
  ["max_webhooks", "Webhook endpoints"],
];

function TenantDetail({ slug, onClose, onChanged, onRemoved }) {
  const path = `/admin/tenants/${encodeURIComponent(slug)}`;
  const tenant = useLoad(() => get(path), [slug]);
  return html`<section class="detail" aria-labelledby="tenant-detail">
    <h2 id="tenant-detail">Tenant ${slug}</h2>
    <button type="button" class="close" onClick=${onClose}>Close<span class="sr"> tenant ${slug}</span></button>
    <${Problem} error=${tenant.error} />
    ${tenant.data && html`<${TenantSettings} path=${path} tenant=${tenant.data} onSaved=${() => { tenant.reload(); onChanged(); }} />`}
    <${ApiKeys} path=${path} />
    <${SigningKeys} path=${path} />
    <${RemoveTenant} slug=${slug} path=${path} onRemoved=${onRemoved} />
  </section>`;
}

function TenantSettings({ path, tenant, onSaved }) {
  const [form, setForm] = useState(() => ({
    name: tenant.name,
    origins: tenant.allowed_origins.join("\n"),
    max_age_secs: tenant.retention.max_age_secs ?? "",
    max_events: tenant.retention.max_events ?? "",
    ...Object.fromEntries(LIMITS.map(([key]) => [key, tenant.limits[key] ?? ""])),
  }));
  const action = useAction();
  const [saved, setSaved] = useState(false);
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.value });
  const number = (value) => (value === "" ? null : Number(value));
  const submit = async (event) => {
    event.preventDefault();
    setSaved(false);
    const body = {
      name: form.name,
      allowed_origins: lines(form.origins),
      retention: { max_age_secs: number(form.max_age_secs), max_events: number(form.max_events) },
      limits: Object.fromEntries(LIMITS.map(([key]) => [key, number(form[key])])),
    };
    if (await action.run(() => patch(path, body))) {
      setSaved(true);
      onSaved();
    }
  };
  return html`<form onSubmit=${submit} aria-labelledby="settings">
    <h3 id="settings">Settings</h3>
    <div class="grid">
      <label>Name<input value=${form.name} onInput=${set("name")} /></label>
      <label class="wide">Allowed origins (one per line)<textarea rows="2" value=${form.origins} onInput=${set("origins")}></textarea></label>
      <label>Keep events for (seconds)<input type="number" min="1" value=${form.max_age_secs} onInput=${set("max_age_secs")} /></label>
      <label>Keep at most (events)<input type="number" min="1" value=${form.max_events} onInput=${set("max_events")} /></label>
    </div>
    <fieldset class="grid"><legend>Limits (empty: the server's default)</legend>
      ${LIMITS.map(([key, label]) => html`<label>${label}<input type="number" min="1" value=${form[key]} onInput=${set(key)} /></label>`)}
    </fieldset>
    <button type="submit" disabled=${action.busy}>Save settings</button>
    ${saved && html`<span role="status" class="ok">Saved.</span>`}
    <${Problem} error=${action.error} />
  </form>`;
}

function ApiKeys({ path }) {
  const keys = useLoad(() => get(`${path}/api-keys`), [path]);
  const [name, setName] = useState("");
  const [shown, setShown] = useState(null);
  const action = useAction();
  const create = async (event) => {
    event.preventDefault();
    const key = await action.run(() => post(`${path}/api-keys`, name.trim() ? { name: name.trim() } : {}));
    if (key) {
      setShown(key);
      setName("");
      keys.reload();
    }
  };
  const revoke = async (key) => {
    if (await action.run(() => del(`${path}/api-keys/${key.id}`)) !== undefined) keys.reload();
  };
  const live = keys.data?.api_keys || [];
  return html`<section aria-labelledby="api-keys">
    <h3 id="api-keys">API keys</h3>
    <${Problem} error=${keys.error || action.error} />
    ${shown && html`<${ShownOnce} label=${`New API key “${shown.name}”`} value=${shown.key} />`}
    ${keys.data && (live.length === 0
      ? html`<${Empty}>No API key yet — create one for the tenant's backend.</${Empty}>`
      : html`<${Table} caption="API keys"><thead><tr><th scope="col">Name</th><th scope="col">Prefix</th>
          <th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Revoked</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>${live.map((key) => html`<tr><th scope="row">${key.name}</th><td class="mono">${key.prefix}</td>
            <td>${when(key.created_at)}</td><td>${when(key.last_used_at)}</td><td>${when(key.revoked_at)}</td>
            <td>${!key.revoked_at && html`<button type="button" onClick=${() => revoke(key)}>Revoke<span class="sr"> ${key.name}</span></button>`}</td></tr>`)}
          </tbody></${Table}>`)}
    <form class="inline" onSubmit=${create}>
      <label>Key name<input value=${name} onInput=${(e) => setName(e.currentTarget.value)} placeholder="backend" /></label>
      <button type="submit" disabled=${action.busy}>Create API key</button>
    </form>
  </section>`;
}

function SigningKeys({ path }) {
  const keys = useLoad(() => get(`${path}/signing-keys`), [path]);
  const [shown, setShown] = useState(null);
  const [upload, setUpload] = useState({ alg: "ES256", pem: "" });
  const action = useAction();
  const created = (key) => {
    if (key) {
      setShown(key);
      keys.reload();
    }
  };
  const createSecret = async () => created(await action.run(() => post(`${path}/signing-keys`, { alg: "HS256" })));
  const uploadKey = async (event) => {
    event.preventDefault();
    const key = await action.run(() => post(`${path}/signing-keys`, { alg: upload.alg, public_key_pem: upload.pem }));
    if (key) setUpload({ ...upload, pem: "" });
    created(key);
  };
  const revoke = async (key) => {
    if (await action.run(() => del(`${path}/signing-keys/${key.kid}`)) !== undefined) keys.reload();
  };
  const list = keys.data?.signing_keys || [];
  return html`<section aria-labelledby="signing-keys">
    <h3 id="signing-keys">Signing keys</h3>
    <${Problem} error=${keys.error || action.error} />
    ${shown?.secret && html`<${ShownOnce} label=${`HS256 secret of key ${shown.kid}`} value=${shown.secret} />`}
    ${shown && !shown.secret && html`<p role="status" class="ok">Key ${shown.kid} (${shown.alg}) added.</p>`}
    ${keys.data && (list.length === 0
      ? html`<${Empty}>No signing key yet — create an HS256 secret or upload a public key, so the backend can mint user tokens.</${Empty}>`
      : html`<${Table} caption="Signing keys"><thead><tr><th scope="col">Key id</th><th scope="col">Algorithm</th>
          <th scope="col">Created</th><th scope="col">Revoked</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>${list.map((key) => html`<tr><th scope="row" class="mono">${key.kid}</th><td>${key.alg}</td>
            <td>${when(key.created_at)}</td><td>${when(key.revoked_at)}</td>
            <td>${!key.revoked_at && html`<button type="button" onClick=${() => revoke(key)}>Revoke<span class="sr"> ${key.kid}</span></button>`}</td></tr>`)}
          </tbody></${Table}>`)}
    <button type="button" onClick=${createSecret} disabled=${action.busy}>Create HS256 secret</button>
    <form onSubmit=${uploadKey} aria-label="Upload a public key">
      <div class="grid">
        <label>Algorithm<select value=${upload.alg} onChange=${(e) => setUpload({ ...upload, alg: e.currentTarget.value })}>
          ${["ES256", "EdDSA", "RS256"].map((alg) => html`<option>${alg}</option>`)}</select></label>
        <label class="wide">Public key (PEM)<textarea rows="3" required class="mono" value=${upload.pem}
          onInput=${(e) => setUpload({ ...upload, pem: e.currentTarget.value })}></textarea></label>
      </div>
      <button type="submit" disabled=${action.busy}>Upload public key</button>
    </form>
  </section>`;
}

function RemoveTenant({ slug, path, onRemoved }) {
  const [typed, setTyped] = useState("");
  const action = useAction();
  const submit = async (event) => {
    event.preventDefault();
    if (typed !== slug) return;
    if (await action.run(() => del(path)) !== undefined) onRemoved();
  };
  return html`<form class="danger-zone" onSubmit=${submit} aria-labelledby="remove-tenant">
    <h3 id="remove-tenant">Remove this tenant</h3>
    <p>Its keys, events, inboxes and webhooks go with it, and its streams end now.</p>
    <label>Type <strong>${slug}</strong> to confirm<input value=${typed} onInput=${(e) => setTyped(e.currentTarget.value)} /></label>
    <button type="submit" disabled=${typed !== slug || action.busy}>Remove tenant</button>
    <${Problem} error=${action.error} />
  </form>`;
}
