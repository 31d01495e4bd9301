//! Herald: a multi-tenant real-time notification server.
//!
//! Tenants' backends publish events over HTTP; each is validated, authenticated and
//! appended to the tenant's durable log before it is acknowledged, then written to every
//! stream it goes to; browsers stream their events over Server-Sent Events and resume from
//! the log. `startup::Application` wires it all together; `main.rs` and the tests both
//! start Herald through it.
//!
//! # Layout
//!
//! **The publish path**, from request to socket:
//! - `server` — the actix-web application; `routes/` its handlers (`publish/`, `history`,
//!   `inbox`, `session`, `admin/`, `health`, `openapi`), `routes::json` and `query` reading
//!   bodies and query strings, `error` turning every layer's error into one JSON answer.
//! - `auth/` — who is calling: the admin token, API keys, user JWTs, per-tenant CORS.
//! - `limits/` — may this tenant publish now (token buckets: `local`, or `rates` in Redis),
//!   may it open another stream (`streams`), and what it did (`usage`).
//! - `domain/` — the vocabulary, parsed at the edge: names, targets, event ids, tenants,
//!   limits, keys, the log's positions.
//! - `store/` — the database: `log/` (the group-commit `writer`, its commits through the
//!   pool `group` — a tenant's plain appends on PostgreSQL in one statement, `plain` — or
//!   SQLite's own connection `sqlite`, `idempotency`, `read`, `retention`),
//!   `sqlite_reads` (the streams' reads on SQLite), `tenants`, `keys`, `credentials` (kept
//!   in memory), `inbox`, `usage` and `hourly_usage`, `fault` (storage faults told apart),
//!   `backup` (copies of the SQLite file while Herald runs, and restoring one); `fair` gives tenants
//!   turns in the writer and hub.
//! - `hub/` — after the commit: shard actors (`shard/`) own the streams' sockets and write
//!   each event's bytes (`sse`) to every stream it goes to (`index`, `socket`, `reactor`,
//!   `deadlines`, `inbox` for the live unread count).
//!
//! **The stream path**, from connection to live:
//! - `stream_path/` — Herald's own HTTP/1.1 path: the accept-time `router` peeks at a
//!   connection's `head`; the `handler` answers a stream request with the rules in
//!   `stream_path::request` (shared with actix-web's `routes::stream`, which serves TLS,
//!   HTTP/2 and keep-alive connections).
//! - `hub::open` decides where a stream starts (resume or `reset`); `hub::connection`
//!   replays the log, then hands the socket to its shard (`hub::shard::handover`), which
//!   writes the rest (`hub::shard::owned`). The live half's rules — send each event once,
//!   keep the unread count, keep-alives, expiry — are one type, `hub::live`, which both a
//!   stream's task and its shard run.
//!
//! **Between nodes** (PostgreSQL + Redis): `broker/` — `redis` publishes what this node
//! committed and hears the others; `sequencer` hands the hub every tenant's events in seq
//! order, reading gaps from the log. `hub::ledger` and `limits::streams` count streams
//! deployment-wide; `limits::redis` is the node's one link to Redis (the limits and the
//! broker both use it).
//!
//! **Talking back**: `webhooks/` sends the tenants' webhook messages — `worker` claims
//! what is due from the outbox in `store::webhooks`, `sender` makes one signed attempt,
//! `schedule` says when a failure is due again; `presence` turns the hub's per-node stream
//! transitions (`hub::slots`) into the deployment's, written by `store::presence`, which
//! puts `user.online` and `user.offline` in the outbox.
//!
//! **Watching it**: `tail` gives whoever watches a tenant (`GET /v1/tail`, the console
//! served from `routes::console`) its events as they are committed and what Herald did
//! about it; `limits::usage` and `store::hourly_usage` keep the hourly figures its charts
//! show.
//!
//! **Around it**: `config`, `cli`, `startup` (imported by nobody), `state` (what handlers
//! reach), `background` (retention, usage counts), `shutdown`, `telemetry` (logs), `traces`
//! (OpenTelemetry spans along the data path), `metrics`, `tls`, `demo/` (the `local` demo
//! tenant).

pub mod auth;
pub mod background;
pub mod broker;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod fair;
pub mod fallbacks;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod presence;
pub mod query;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod startup;
pub mod state;
pub mod store;
pub mod stream_path;
pub mod tail;
pub mod telemetry;
pub mod tls;
pub mod traces;
pub mod webhooks;
