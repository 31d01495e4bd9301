// herald-server: Herald's server library for Node.
//
//   import { Herald } from "herald-server";
//   const herald = new Herald("https://herald.example.com", process.env.HERALD_API_KEY);
//   await herald.publish({ to: { user: "alice" }, type: "mail", data: { subject: "Hi" } });
//
// `Herald` for a tenant's backend, `HeraldOperator` for the operator, `mintUserToken` for
// users' pages, `verifyWebhook` for Herald's webhook messages, `HeraldError` for whatever
// Herald refused.

export { HeraldError, WebhookVerificationError } from "./errors.js";
export { HeraldOperator, type NewTenant } from "./operator.js";
export { Herald, type EventIn, type Published, type StoredEvent, type TailFrame, type Target } from "./tenant.js";
export { type Algorithm, mintUserToken, type TokenRequest } from "./tokens.js";
export type { ClientOptions, Retries } from "./transport.js";
export { TOLERANCE_SECS, verifyWebhook } from "./webhooks.js";
