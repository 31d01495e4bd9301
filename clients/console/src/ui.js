// Pieces every view uses: an error as Herald gave it, an empty state that says what to do,
// a secret shown once with a copy button, a pager, a scrollable table, and a hook that loads.
import { html } from "htm/preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";

/** An error from the API, with its code and message; `null` shows nothing. */
export function Problem({ error }) {
  if (!error) return null;
  return html`<p class="problem" role="alert"><strong>${error.code || "error"}</strong>${": "}${error.message}</p>`;
}

/** What to show where a list has nothing yet: what it would hold, and what to do. */
export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

/** A secret Herald shows only once: the value, a copy button, and a warning. */
export function ShownOnce({ label, value }) {
  const [copied, setCopied] = useState(false);
  const field = useRef();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied(true);
    } catch {
      // No clipboard permission: select it, so that Ctrl+C copies it.
      field.current?.select();
      setCopied(false);
    }
  };
  return html`<div class="once" role="status">
    <label>${label}<input ref=${field} class="mono" readonly value=${value} /></label>
    <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
    <p>Shown only this once: keep it now.</p>
  </div>`;
}

/** Previous/next for a list paged by a cursor: `cursors` are the pages seen so far. */
export function Pager({ next, hasPrevious, onNext, onPrevious, label }) {
  if (!next && !hasPrevious) return null;
  return html`<nav class="pager" aria-label=${label}>
    <button type="button" onClick=${onPrevious} disabled=${!hasPrevious}>Previous</button>
    <button type="button" onClick=${onNext} disabled=${!next}>Next</button>
  </nav>`;
}

/** Cursor paging: the cursor of the current page, and how to move. */
export function usePages() {
  const [stack, setStack] = useState([null]);
  const cursor = stack[stack.length - 1];
  return {
    cursor,
    hasPrevious: stack.length > 1,
    next: (value) => setStack((s) => [...s, value]),
    previous: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    reset: () => setStack([null]),
  };
}

/** A table that scrolls sideways on a narrow screen (and can be scrolled from the keyboard). */
export function Table({ caption, children }) {
  return html`<div class="scroll" tabindex="0" role="region" aria-label=${caption}>
    <table><caption>${caption}</caption>${children}</table>
  </div>`;
}

/** Runs `load` when `deps` change; `{data, error, loading, reload}`. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const run = useCallback(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/** An action's state: runs it, keeps its error, says when it is under way. */
export function useAction() {
  const [state, setState] = useState({ busy: false, error: null });
  const run = async (action) => {
    setState({ busy: true, error: null });
    try {
      const result = await action();
      setState({ busy: false, error: null });
      return result;
    } catch (error) {
      setState({ busy: false, error });
      return undefined;
    }
  };
  return { ...state, run, clear: () => setState({ busy: false, error: null }) };
}

/** A time as this browser's locale shows it, or a dash. */
export function when(text) {
  return text ? new Date(text).toLocaleString() : "—";
}

/** Where an event went, in a few words. */
export function recipient(to) {
  if (!to) return "";
  if (to.user !== undefined) return `user ${to.user}`;
  if (to.users) return `users ${to.users.join(", ")}`;
  if (to.topic !== undefined) return `topic ${to.topic}`;
  return "broadcast";
}
