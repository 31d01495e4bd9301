// Herald Console: sign in with the admin token (every tenant) or a tenant's API key (that
// tenant only), then the views — tenants, live tail, send, user inspector, webhooks, usage —
// each through Herald's public API. Views are chosen by the URL's fragment (#/tail …).
import { html, render } from "htm/preact";
import { useEffect, useMemo, useState } from "preact/hooks";

import { get, session } from "./api.js";
import { createFeed } from "./tail_feed.js";
import { Problem, useAction } from "./ui.js";
import { Send } from "./views/send.js";
import { Tail } from "./views/tail.js";
import { Tenants } from "./views/tenants.js";
import { Usage } from "./views/usage.js";
import { UserInspector } from "./views/user.js";
import { Webhooks } from "./views/webhooks.js";

const VIEWS = [
  { path: "tenants", title: "Tenants", operator: true },
  { path: "tail", title: "Live tail", tenant: true },
  { path: "send", title: "Send", tenant: true },
  { path: "user", title: "User inspector", tenant: true },
  { path: "webhooks", title: "Webhooks", tenant: true },
  { path: "usage", title: "Usage" },
];

function route() {
  return location.hash.replace(/^#\/?/, "").split("?")[0];
}

function SignIn({ onSignedIn }) {
  const [credential, setCredential] = useState("");
  const action = useAction();
  const submit = async (event) => {
    event.preventDefault();
    const value = credential.trim();
    await action.run(async () => {
      if (!value) throw Object.assign(new Error("type the admin token or an API key"), { code: "missing_credentials" });
      // An API key says which tenant it is; the admin token is checked by listing one tenant.
      if (value.startsWith("hk_")) {
        const tenant = await get("/v1/tenant", { credential: value });
        onSignedIn({ credential: value, role: "tenant", tenant: tenant.slug });
      } else {
        await get("/admin/tenants?limit=1", { credential: value });
        onSignedIn({ credential: value, role: "operator", tenant: null });
      }
    });
  };
  return html`<main class="signin">
    <h1>Herald Console</h1>
    <form onSubmit=${submit}>
      <label for="credential">Admin token or API key</label>
      <input id="credential" type="password" autocomplete="off" autofocus value=${credential}
        onInput=${(e) => setCredential(e.currentTarget.value)} />
      <button type="submit" disabled=${action.busy}>Sign in</button>
    </form>
    <${Problem} error=${action.error} />
    <p class="hint">The operator signs in with the admin token Herald printed at start-up (or
      <code>admin.token</code>); a tenant's engineer with one of its API keys (<code>hk_…</code>).
      The credential stays in this tab until you sign out or close it.</p>
  </main>`;
}

/** The live tail of `tenant`, kept across views; a new one when the tenant changes. */
function useFeeds() {
  const [feeds] = useState(() => new Map());
  useEffect(() => () => feeds.forEach((feed) => feed.close()), []);
  return (tenant) => {
    if (!tenant) return null;
    if (!feeds.has(tenant)) {
      feeds.forEach((feed) => feed.close());
      feeds.clear();
      feeds.set(tenant, createFeed(tenant));
    }
    return feeds.get(tenant);
  };
}

function Shell({ who, onSignOut, onTenant }) {
  const [path, setPath] = useState(route());
  useEffect(() => {
    const moved = () => setPath(route());
    addEventListener("hashchange", moved);
    return () => removeEventListener("hashchange", moved);
  }, []);
  const operator = who.role === "operator";
  const views = VIEWS.filter((view) => operator || !view.operator);
  const view = views.find((v) => v.path === path) || views[0];
  const feedOf = useFeeds();
  const tenant = who.tenant;
  useEffect(() => {
    document.title = `${view.title} · Herald Console`;
  }, [view]);
  // Moving focus to the view's heading tells a screen reader the view changed.
  useEffect(() => {
    document.querySelector("main h1")?.focus();
  }, [view.path]);
  let body;
  if (view.tenant && !tenant) {
    body = html`<h1 tabindex="-1">${view.title}</h1>
      <p class="empty">Choose a tenant first: in <a href="#/tenants">Tenants</a>, pick one with “Work with”.</p>`;
  } else if (view.path === "tenants") {
    body = html`<${Tenants} current=${tenant} onChoose=${onTenant} />`;
  } else if (view.path === "tail") {
    body = html`<${Tail} feed=${feedOf(tenant)} />`;
  } else if (view.path === "send") {
    body = html`<${Send} tenant=${tenant} feed=${feedOf(tenant)} />`;
  } else if (view.path === "user") {
    body = html`<${UserInspector} tenant=${tenant} />`;
  } else if (view.path === "webhooks") {
    body = html`<${Webhooks} tenant=${tenant} />`;
  } else {
    body = html`<${Usage} tenant=${tenant} operator=${operator} />`;
  }
  return html`<div class="shell">
    <header>
      <a class="brand" href="#/${views[0].path}">Herald Console</a>
      <p class="who">
        ${operator ? "Operator" : "Tenant"}${tenant ? html` · tenant <strong>${tenant}</strong>` : ""}
        ${operator && tenant ? html` <a href="#/tenants">change</a>` : ""}
      </p>
      <button type="button" class="signout" onClick=${onSignOut}>Sign out</button>
    </header>
    <nav aria-label="Views">
      <ul>
        ${views.map(
          (v) => html`<li><a href="#/${v.path}" aria-current=${v === view ? "page" : undefined}>${v.title}</a></li>`,
        )}
      </ul>
    </nav>
    <main>${body}</main>
  </div>`;
}

function App() {
  const [who, setWho] = useState(() => session.get());
  const signIn = (value) => {
    session.set(value);
    setWho(value);
    location.hash = value.role === "operator" ? "#/tenants" : "#/tail";
  };
  const signOut = () => {
    session.clear();
    setWho(null);
    location.hash = "";
  };
  const chooseTenant = (slug) => {
    const value = { ...session.get(), tenant: slug };
    session.set(value);
    setWho(value);
  };
  const shell = useMemo(
    () => who && html`<${Shell} key=${who.credential} who=${who} onSignOut=${signOut} onTenant=${chooseTenant} />`,
    [who],
  );
  return who ? shell : html`<${SignIn} onSignedIn=${signIn} />`;
}

render(html`<${App} />`, document.getElementById("app"));

