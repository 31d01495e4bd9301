// Checking that a webhook message is Herald's: Standard Webhooks signatures. Herald signs
// `"{webhook-id}.{webhook-timestamp}.{body}"` with HMAC-SHA256 under the endpoint's secret
// (`whsec_` and the key in base64) and sends `webhook-signature: v1,<base64>` — two of them,
// space-separated, for 24 hours after a rotation (the new secret's and the old one's), so a
// receiver holding either secret accepts the message.

import { createHmac, timingSafeEqual } from "node:crypto";

import { WebhookVerificationError } from "./errors.js";

export const TOLERANCE_SECS = 300;

type Headers = Record<string, string | string[] | undefined> | globalThis.Headers;

function header(headers: Headers, name: string): string {
  const value =
    typeof (headers as globalThis.Headers).get === "function"
      ? (headers as globalThis.Headers).get(name)
      : Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) throw new WebhookVerificationError(`no ${name} header`);
  return text;
}

function key(secret: string): Buffer {
  const encoded = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new WebhookVerificationError("the secret is not `whsec_` and base64");
  return Buffer.from(encoded, "base64");
}

/** The message (parsed JSON) if `body` with `headers` is signed with `secret` (or one of
 * several) and was sent within `tolerance` seconds of now; else throws
 * WebhookVerificationError. Pass the raw body as received, before any JSON parsing. */
export function verifyWebhook(
  headers: Headers,
  body: string | Uint8Array,
  secret: string | string[],
  options: { tolerance?: number; now?: number } = {},
): any {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  const sent = Number(timestamp);
  if (!Number.isInteger(sent)) throw new WebhookVerificationError("webhook-timestamp is not a number");
  const now = options.now ?? Date.now() / 1000;
  if (Math.abs(now - sent) > (options.tolerance ?? TOLERANCE_SECS)) {
    throw new WebhookVerificationError("the message's timestamp is outside the tolerance");
  }
  const raw = typeof body === "string" ? Buffer.from(body) : Buffer.from(body);
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), raw]);
  const expected = (Array.isArray(secret) ? secret : [secret]).map((s) => createHmac("sha256", key(s)).update(signed).digest());
  for (const signature of signatures.split(" ")) {
    const [version, value] = signature.split(",", 2);
    if (version !== "v1" || !value) continue;
    const given = Buffer.from(value, "base64");
    // Every candidate is compared, in constant time, whatever matched before.
    const matches = expected.map((e) => e.length === given.length && timingSafeEqual(e, given));
    if (matches.some(Boolean)) return JSON.parse(raw.toString("utf8"));
  }
  throw new WebhookVerificationError("no signature matches the secret");
}
