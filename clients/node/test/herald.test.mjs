// herald-server against a real Herald: every method, retries that store once, tokens of
// each algorithm, webhooks verified through a rotation, errors mapped, and the map of
// operations held to /openapi.json.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, test } from "node:test";

import { Webhook } from "standardwebhooks";

import { Herald, HeraldError, HeraldOperator, WebhookVerificationError, mintUserToken, verifyWebhook } from "../dist/index.js";
import { startHerald, startReceiver } from "./server.mjs";

let server;
before(async () => {
  server = await startHerald();
});
after(() => server?.stop());

/** Takes SQLite's write lock on a database, says so, and keeps it for some seconds. */
const LOCK_HOLDER = `
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
`;

/** A test that needs Herald (skipped, having said why, without a build outside CI). */
const live = (name, body) => test(name, async (t) => (server ? body(t) : t.skip("no Herald build")));

const all = async (iterator) => {
  const out = [];
  for await (const item of iterator) out.push(item);
  return out;
};

const streamStatus = async (slug, token) => {
  const controller = new AbortController();
  const response = await fetch(`${server.url}/t/${slug}/stream`, { headers: { Authorization: `Bearer ${token}` }, signal: controller.signal });
  controller.abort();
  return response.status;
};

live("every target form is published and answered in order", async () => {
  const tenant = await server.tenant();
  const herald = new Herald(server.url, tenant.apiKey);
  const one = await herald.publish({ to: { user: "alice" }, type: "mail", data: { subject: "Hi" }, inbox: true });
  assert.deepEqual(one.map((e) => [e.to, e.type]), [[{ user: "alice" }, "mail"]]);
  const batch = await herald.publish([
    { to: { users: ["bob", "carol"] }, data: 1, fallback: { after_secs: 600, unless: "seen" } },
    { to: { topic: "stock:AAPL" }, type: "stock", data: { px: 187.3 } },
    { to: { broadcast: true }, type: "score", data: "2 – 1", inbox: true },
  ]);
  assert.deepEqual(batch.map((e) => e.to), [{ user: "bob" }, { user: "carol" }, { topic: "stock:AAPL" }, { broadcast: true }]);
  const stored = await all(herald.history("bob", { topics: ["stock:AAPL"] }));
  assert.deepEqual(stored.map((e) => e.data), [1, { px: 187.3 }, "2 – 1"]);
  const [receipt] = await herald.receipts("bob", [batch[0].id]);
  assert.equal(receipt.fallback.status, "pending");
  await herald.cancelFallback(batch[0].id);
  assert.equal((await herald.receipts("bob", [batch[0].id]))[0].fallback.status, "cancelled");
});

live("a 429 is waited out and the retry stores one event with the same key", async () => {
  const tenant = await server.tenant();
  await server.operator.setLimits(tenant.slug, { publish_per_sec: 1, publish_burst: 1 });
  const keys = [];
  const recording = (url, init) => {
    keys.push(init?.headers?.["Idempotency-Key"]);
    return fetch(url, init);
  };
  const herald = new Herald(server.url, tenant.apiKey, { fetch: recording });
  await herald.publish({ to: { user: "u" }, data: "first" });
  keys.length = 0;
  const began = Date.now();
  const [second] = await herald.publish({ to: { user: "u" }, data: "second" });
  assert.ok(Date.now() - began >= 500, "it waited for Retry-After");
  assert.equal(keys.length, 2);
  assert.ok(keys[0] && keys[0] === keys[1], `${keys}`);
  const stored = await all(herald.history("u"));
  assert.deepEqual(stored.map((e) => e.data), ["first", "second"]);
  assert.equal(stored[1].id, second.id);
  const impatient = new Herald(server.url, tenant.apiKey, { retries: { attempts: 1 } });
  await assert.rejects(impatient.publish({ to: { user: "u" }, data: "third" }), (error) => {
    assert.ok(error instanceof HeraldError);
    assert.equal(error.status, 429);
    assert.equal(error.code, "rate_limited");
    assert.ok(error.retryAfter >= 1);
    return true;
  });
});

live("a 503 while the database is away is retried until it is back", async () => {
  const tenant = await server.tenant();
  const herald = new Herald(server.url, tenant.apiKey);
  await herald.publish({ to: { user: "u" }, data: "before" });
  // Another process holds SQLite's write lock for 2 s: Herald answers 503 storage_unavailable.
  const holder = spawn("python3", ["-c", LOCK_HOLDER, server.database, "2"], { stdio: ["ignore", "pipe", "inherit"] });
  await once(holder.stdout, "data");
  const impatient = new Herald(server.url, tenant.apiKey, { retries: { attempts: 1 } });
  await assert.rejects(impatient.publish({ to: { user: "u" }, data: "refused" }), (error) => error.status === 503 && error.code === "storage_unavailable");
  const patient = new Herald(server.url, tenant.apiKey, { retries: { attempts: 20, firstWait: 0.2, longestWait: 5 } });
  const [during] = await patient.publish({ to: { user: "u" }, data: "during" });
  const stored = await all(herald.history("u"));
  assert.deepEqual(stored.map((e) => e.data), ["before", "during"]);
  assert.equal(stored[1].id, during.id);
});

live("history pages by itself over 2,500 events", async () => {
  const tenant = await server.tenant();
  const herald = new Herald(server.url, tenant.apiKey);
  for (let start = 0; start < 2500; start += 500) {
    await herald.publish(Array.from({ length: 500 }, (_, i) => ({ to: { user: "reader" }, data: start + i })));
  }
  const pages = [];
  const page = herald.historyPage.bind(herald);
  herald.historyPage = async (...args) => {
    const answer = await page(...args);
    pages.push(answer.events.length);
    return answer;
  };
  const events = await all(herald.history("reader", { pageSize: 1000 }));
  assert.deepEqual(events.map((e) => e.data), Array.from({ length: 2500 }, (_, i) => i));
  assert.deepEqual(pages, [1000, 1000, 500]);
  const newest = await page("reader", { newestFirst: true, limit: 3 });
  assert.deepEqual(newest.events.map((e) => e.data), [2499, 2498, 2497]);
});

live("the inbox, receipts, presence, the tail, the tenant and its usage", async () => {
  const tenant = await server.tenant();
  const herald = new Herald(server.url, tenant.apiKey);
  const published = await herald.publish([0, 1, 2].map((n) => ({ to: { user: "ann" }, type: "mail", data: n, inbox: true })));
  const ids = published.map((e) => e.id);
  const page = await herald.inbox("ann");
  assert.equal(page.unread, 3);
  assert.deepEqual(page.items.map((i) => i.data), [2, 1, 0]);
  assert.equal(await herald.markRead("ann", [ids[0]]), 2);
  assert.equal(await herald.markUnread("ann", [ids[0]]), 3);
  assert.equal(await herald.markRead("ann", { everything: true }), 0);
  const receipts = await herald.receipts("ann", ids);
  assert.deepEqual(receipts.map((r) => r.id), ids);
  assert.ok(receipts.every((r) => r.read_at && r.seen_at && r.delivered_at));

  assert.deepEqual(await herald.presence("pat"), { user: "pat", online: false, streams: 0, last_seen_at: null });
  const token = await mintUserToken({ kid: tenant.kid, secret: tenant.secret, sub: "pat" });
  const controller = new AbortController();
  const stream = await fetch(`${server.url}/t/${tenant.slug}/stream`, { headers: { Authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(stream.status, 200);
  // Counted as the stream registers, a moment after it answered.
  for (let i = 0; i < 50 && (await herald.presence("pat")).streams !== 1; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await herald.presence("pat")).streams, 1);
  assert.deepEqual((await herald.presenceOf(["pat", "nobody"])).map((p) => p.online), [true, false]);
  controller.abort();

  const tail = new AbortController();
  setTimeout(() => herald.publish({ to: { user: "tia" }, type: "ping", data: 7 }), 500);
  for await (const frame of herald.tail({ signal: tail.signal })) {
    if (frame.event !== "event") continue;
    assert.deepEqual(frame.data.to, { user: "tia" });
    assert.equal(frame.data.data, 7);
    tail.abort();
  }
  assert.equal((await herald.tenant()).slug, tenant.slug);
  assert.equal((await herald.usage()).published.today, 4);
});

live("webhook messages verify with the secret, and after a rotation with either", async () => {
  const tenant = await server.tenant();
  const herald = new Herald(server.url, tenant.apiKey);
  const receiver = await startReceiver();
  try {
    const endpoint = await herald.createWebhook(receiver.url, ["*"], { description: "tests" });
    const secret = endpoint.secret;
    assert.deepEqual((await herald.webhooks()).map((w) => w.id), [endpoint.id]);
    const messageId = await herald.testWebhook(endpoint.id);
    let { headers, body } = await receiver.next();
    assert.equal(verifyWebhook(headers, body, secret).type, "webhook.test");
    assert.equal(headers["webhook-id"], messageId);
    assert.equal(new Webhook(secret).verify(body.toString(), headers).type, "webhook.test");
    assert.throws(() => verifyWebhook(headers, body.toString().replace("webhook.test", "webhook.tesx"), secret), WebhookVerificationError);
    assert.throws(() => verifyWebhook(headers, body, `whsec_${"A".repeat(44)}`), WebhookVerificationError);
    assert.throws(() => verifyWebhook(headers, body, secret, { now: Date.now() / 1000 + 3600 }), WebhookVerificationError);

    const rotated = await herald.rotateWebhookSecret(endpoint.id);
    assert.notEqual(rotated, secret);
    await herald.testWebhook(endpoint.id);
    ({ headers, body } = await receiver.next());
    assert.equal(headers["webhook-signature"].split(" ").length, 2, "both secrets sign for now");
    for (const either of [secret, rotated]) {
      assert.equal(verifyWebhook(headers, body, either).type, "webhook.test");
      assert.ok(new Webhook(either).verify(body.toString(), headers));
    }

    receiver.status = 500;
    const failing = await herald.testWebhook(endpoint.id);
    await receiver.next();
    let deliveries = [];
    for (let i = 0; i < 50 && !deliveries[0]?.attempts.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      deliveries = (await all(herald.deliveries(endpoint.id))).filter((d) => d.message_id === failing);
    }
    assert.equal(deliveries[0].attempts[0].status_code, 500);
    receiver.status = 204;
    await herald.retryDelivery(endpoint.id, failing);
    let status;
    for (let i = 0; i < 100 && status !== "delivered"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await herald.deliveriesPage(endpoint.id)).deliveries.find((d) => d.message_id === failing).status;
    }
    assert.equal(status, "delivered");
    const changed = await herald.updateWebhook(endpoint.id, { events: ["user.online"], disabled: true });
    assert.deepEqual(changed.events, ["user.online"]);
    assert.equal((await herald.webhook(endpoint.id)).disabled_reason, "disabled");
    await herald.deleteWebhook(endpoint.id);
    assert.deepEqual(await herald.webhooks(), []);
  } finally {
    receiver.close();
  }
});

for (const alg of ["HS256", "ES256", "EdDSA", "RS256"]) {
  live(`a ${alg} token opens a stream`, async () => {
    const tenant = await server.tenant();
    let token;
    if (alg === "HS256") {
      token = await mintUserToken({ kid: tenant.kid, secret: tenant.secret, sub: "ada", topics: ["news"], ttl: 60 });
    } else {
      const kind = { ES256: ["ec", { namedCurve: "P-256" }], EdDSA: ["ed25519", {}], RS256: ["rsa", { modulusLength: 2048 }] }[alg];
      const { publicKey, privateKey } = generateKeyPairSync(kind[0], {
        ...kind[1],
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
      });
      const key = await server.operator.createSigningKey(tenant.slug, { alg, public_key_pem: publicKey });
      token = await mintUserToken({ kid: key.kid, privateKey, alg, sub: "ada", topics: ["news"], ttl: 60 });
    }
    assert.equal(await streamStatus(tenant.slug, token), 200);
    const expired = await mintUserToken({ kid: tenant.kid, secret: tenant.secret, sub: "ada", now: 1_000_000_000 });
    assert.equal(await streamStatus(tenant.slug, expired), 401);
  });
}

live("refusals carry status, code, message and index", async () => {
  const tenant = await server.tenant();
  const herald = new Herald(server.url, tenant.apiKey);
  await assert.rejects(herald.publish([{ to: { user: "ok" } }, { to: { planet: "mars" } }]), (error) => {
    assert.ok(error instanceof HeraldError);
    assert.deepEqual([error.status, error.code, error.index], [422, "invalid_target", 1]);
    return true;
  });
  await assert.rejects(herald.webhook("wh_nothing"), (e) => e.status === 404 && e.code === "webhook_not_found");
  await assert.rejects(new Herald(server.url, "hk_not_a_key").presence("u"), (e) => e.status === 401 && e.code === "invalid_api_key");
  await assert.rejects(new Herald("http://127.0.0.1:9", "hk_x", { timeout: 1 }).tenant(), (e) => e.status === null && e.code === "unreachable");
});

live("the operator manages tenants, keys, limits and usage", async () => {
  const operator = server.operator;
  await operator.createTenant({ slug: "op-one", name: "One", allowed_origins: ["https://one.example"] });
  await operator.createTenant({ slug: "op-two" });
  const slugs = (await all(operator.tenants({ pageSize: 1 }))).map((t) => t.slug);
  assert.ok(slugs.includes("op-one") && slugs.includes("op-two"));
  assert.deepEqual(slugs, [...slugs].sort());
  assert.equal((await operator.setLimits("op-one", { publish_per_sec: 5 })).limits.publish_per_sec, 5);
  assert.equal((await operator.updateTenant("op-one", { name: "Uno" })).name, "Uno");
  const key = await operator.createApiKey("op-one", { name: "ci" });
  assert.deepEqual((await operator.apiKeys("op-one")).map((k) => k.name), ["ci"]);
  await operator.asTenant("op-one").publish({ to: { user: "u" }, data: 1 });
  assert.equal((await operator.tenantUsage("op-one")).published.today, 1);
  assert.ok((await operator.usage()).tenants >= 2);
  const signing = await operator.createSigningKey("op-one");
  assert.deepEqual((await operator.signingKeys("op-one")).map((k) => k.kid), [signing.kid]);
  await operator.revokeSigningKey("op-one", signing.kid);
  await operator.revokeApiKey("op-one", key.id);
  await assert.rejects(new Herald(server.url, key.key).tenant(), (e) => e.code === "invalid_api_key");
  assert.deepEqual(await operator.tenantWebhooks("op-one"), []);
  assert.equal((await operator.getTenant("op-two")).slug, "op-two");
  await operator.deleteTenant("op-one");
  await operator.deleteTenant("op-two");
  await assert.rejects(operator.getTenant("op-one"), (e) => e.code === "tenant_not_found");
});

live("every backend and operator operation has a method", async () => {
  const document = await (await fetch(`${server.url}/openapi.json`)).json();
  const operations = new Set();
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if ((operation.tags ?? []).some((tag) => tag === "tenant backend" || tag === "operator")) operations.add(`${method.toUpperCase()} ${path}`);
    }
  }
  assert.ok(operations.size > 30);
  const mapped = { ...Herald.OPERATIONS, ...HeraldOperator.OPERATIONS };
  assert.deepEqual([...operations].filter((o) => !(o in mapped)), [], "no method for these");
  assert.deepEqual(Object.keys(mapped).filter((o) => !operations.has(o)), [], "methods for operations Herald lacks");
  for (const [operation, method] of Object.entries(Herald.OPERATIONS)) assert.equal(typeof Herald.prototype[method], "function", operation);
  for (const [operation, method] of Object.entries(HeraldOperator.OPERATIONS)) assert.equal(typeof HeraldOperator.prototype[method], "function", operation);
});
