// Send a test notification: to a user, users, a topic or everyone, with a type, JSON data,
// an inbox item and a fallback if wanted; Herald's answer is shown as it came, and the tail
// (opened here if it was not) shows the event arrive.
import { html } from "htm/preact";
import { useState } from "preact/hooks";

import { post } from "../api.js";
import { Problem, useAction } from "../ui.js";
import { useFeed } from "./tail.js";

const KINDS = [
  ["user", "A user"],
  ["users", "Several users"],
  ["topic", "A topic"],
  ["broadcast", "Everyone (broadcast)"],
];

function target(kind, value) {
  if (kind === "broadcast") return { broadcast: true };
  if (kind === "users") return { users: value.split(",").map((s) => s.trim()).filter(Boolean) };
  return { [kind]: value.trim() };
}

export function Send({ tenant, feed }) {
  useFeed(feed);
  const [form, setForm] = useState({
    kind: "user", to: "", type: "message", data: '{"text": "Hello from the console"}',
    inbox: false, fallback: false, after: "300", unless: "seen",
  });
  const [answer, setAnswer] = useState(null);
  const [badData, setBadData] = useState(null);
  const action = useAction();
  const set = (field) => (e) => {
    const input = e.currentTarget;
    setForm({ ...form, [field]: input.type === "checkbox" ? input.checked : input.value });
  };
  const submit = async (event) => {
    event.preventDefault();
    setAnswer(null);
    let data;
    try {
      data = JSON.parse(form.data);
      setBadData(null);
    } catch (error) {
      setBadData({ code: "invalid_json", message: `the data is not JSON: ${error.message}` });
      return;
    }
    const body = { to: target(form.kind, form.to), type: form.type.trim() || "message", data };
    if (form.inbox) body.inbox = true;
    if (form.fallback) body.fallback = { after_secs: Number(form.after), unless: form.unless };
    const result = await action.run(() => post("/v1/events", body, { tenant }));
    if (result) setAnswer(result);
  };
  return html`
    <h1 tabindex="-1">Send a test notification</h1>
    <form onSubmit=${submit}>
      <div class="grid">
        <label>To<select value=${form.kind} onChange=${set("kind")}>
          ${KINDS.map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select></label>
        ${form.kind !== "broadcast" && html`<label>${form.kind === "users" ? "User ids (comma separated)" : form.kind === "topic" ? "Topic" : "User id"}
          <input required value=${form.to} onInput=${set("to")} /></label>`}
        <label>Type<input value=${form.type} onInput=${set("type")} /></label>
        <label class="wide">Data (JSON)<textarea rows="4" class="mono" value=${form.data} onInput=${set("data")}></textarea></label>
      </div>
      <fieldset class="grid"><legend>Extras</legend>
        <label class="check"><input type="checkbox" checked=${form.inbox} onChange=${set("inbox")} /> Also an inbox item</label>
        <label class="check"><input type="checkbox" checked=${form.fallback} onChange=${set("fallback")} /> Fallback if not acted on</label>
        ${form.fallback && html`<label>After (seconds)<input type="number" min="1" value=${form.after} onInput=${set("after")} /></label>
          <label>Unless<select value=${form.unless} onChange=${set("unless")}>
            ${["delivered", "seen", "read"].map((fact) => html`<option>${fact}</option>`)}</select></label>`}
      </fieldset>
      <button type="submit" disabled=${action.busy}>Send</button>
    </form>
    <${Problem} error=${badData || action.error} />
    ${answer && html`<section aria-labelledby="answer" class="answer">
      <h2 id="answer">Herald's answer</h2>
      <pre>${JSON.stringify(answer, null, 2)}</pre>
      <p><a href="#/tail">See it in the live tail</a> (${feed.status === "open" ? "open" : feed.status}).</p>
    </section>`}`;
}
