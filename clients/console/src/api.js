// Herald's public HTTP API as the console calls it. The credential (the admin token or a
// tenant's API key) lives in this tab's sessionStorage only and goes out as
// `Authorization: Bearer`; the operator acts on one tenant's API with `Herald-Tenant`.

const KEY = "herald.console";

export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY)) || null;
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(KEY, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

/** An answer Herald gave with an error status: its code and message as Herald said them. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error || {};
    super(error.message || `Herald answered ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
  }
}

function headers(tenant, json) {
  const { credential, role } = session.get() || {};
  const out = { Authorization: `Bearer ${credential}` };
  if (tenant && role === "operator") out["Herald-Tenant"] = tenant;
  if (json) out["Content-Type"] = "application/json";
  return out;
}

/** One request; the JSON answer (null for 204), or an ApiError. */
export async function call(method, path, { body, tenant, credential } = {}) {
  const sent = headers(tenant, body !== undefined);
  if (credential) sent.Authorization = `Bearer ${credential}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw Object.assign(new Error(`Herald did not answer: ${error.message}`), { code: "unreachable" });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options) => call("POST", path, { ...options, body });
export const patch = (path, body, options) => call("PATCH", path, { ...options, body });
export const del = (path, options) => call("DELETE", path, options);

/** A query string of the defined values. */
export function query(values) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/**
 * The tenant's live tail (`GET /v1/tail`): calls `onOpen()` once Herald answered, then
 * `onFrame({event, data})` for each frame until `signal` aborts or Herald ends it. EventSource cannot send a header, so this reads
 * the stream with fetch and parses its frames.
 */
export async function readTail(tenant, signal, onFrame, onOpen) {
  const response = await fetch("/v1/tail", { headers: headers(tenant), signal, credentials: "omit", cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) onFrame({ event, data: JSON.parse(data.join("\n")) });
    }
  }
}
