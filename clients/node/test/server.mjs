// A real Herald for the suite: the repository's build (`target/debug/herald`, or
// HERALD_BIN), started on a free port with a SQLite database of its own; and a webhook
// receiver on 127.0.0.1.
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, openSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { HeraldOperator } from "../dist/index.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

function freePort() {
  return new Promise((done) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Starts Herald; `null` (after saying why) where there is no build and CI is not set. */
export async function startHerald() {
  const binary = process.env.HERALD_BIN ?? join(repo, "target/debug/herald");
  if (!existsSync(binary)) {
    const reason = `no Herald build at ${binary} (cargo build, or set HERALD_BIN)`;
    if (process.env.CI) throw new Error(reason);
    console.log(`skipped: ${reason}`);
    return null;
  }
  const work = mkdtempSync(join(tmpdir(), "herald-node-"));
  const port = await freePort();
  const adminToken = randomBytes(24).toString("base64url");
  const log = openSync(join(work, "herald.log"), "w");
  const child = spawn(binary, ["serve"], {
    cwd: repo,
    stdio: ["ignore", log, log],
    env: {
      ...process.env,
      HERALD__DATABASE__URL: `sqlite://${work}/herald.db`,
      HERALD__DATABASE__BUSY_TIMEOUT_MS: "500",
      HERALD__SERVER__PORT: String(port),
      HERALD__ADMIN__TOKEN: adminToken,
      HERALD__SEED__DEMO_TENANT: "false",
      HERALD__DEMO__ENABLED: "false",
      HERALD__WEBHOOKS__ALLOW_PRIVATE_TARGETS: "true",
      HERALD__WEBHOOKS__RETRY_SCHEDULE_SECS: "1,1,1",
    },
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const operator = new HeraldOperator(url, adminToken);
  return {
    url,
    adminToken,
    database: join(work, "herald.db"),
    operator,
    stop: () => child.kill("SIGTERM"),
    /** A tenant of its own: its slug, an API key and an HS256 signing key. */
    async tenant() {
      const slug = `t${randomUUID().replaceAll("-", "").slice(0, 12)}`;
      await operator.createTenant({ slug, allowed_origins: ["https://app.example.com"] });
      const key = await operator.createApiKey(slug, { name: "tests" });
      const signing = await operator.createSigningKey(slug);
      return { slug, apiKey: key.key, kid: signing.kid, secret: signing.secret };
    },
  };
}

/** A webhook receiver: keeps each request (headers, raw body), answers `status`. */
export async function startReceiver() {
  const received = [];
  const waiting = [];
  const receiver = { status: 204, received, url: "" };
  const server = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const message = { headers: request.headers, body: Buffer.concat(chunks) };
      response.writeHead(receiver.status).end();
      const waiter = waiting.shift();
      if (waiter) waiter(message);
      else received.push(message);
    });
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  receiver.url = `http://127.0.0.1:${server.address().port}/hooks`;
  receiver.next = () => (received.length ? Promise.resolve(received.shift()) : new Promise((done) => waiting.push(done)));
  receiver.close = () => server.close();
  return receiver;
}
