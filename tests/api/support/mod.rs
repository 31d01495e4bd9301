//! What the tests stand on: Herald spawned in the test process (`app`), its HTTP API with
//! typed helpers (`api`), an SSE client (`sse_client`), Herald as a separate process
//! (`process`), private PostgreSQL and Redis servers with several nodes (`cluster`),
//! Chromium driven through playwright-core (`browser`), and a webhook receiver with the
//! Standard Webhooks reference verifier (`receiver`).

pub mod api;
pub mod app;
pub mod browser;
pub mod cluster;
pub mod process;
pub mod receiver;
pub mod sse_client;

pub use api::{
    TestTenant, assert_error, now_secs, retry_after, seq_of, sign_hs256, skip_unless_ci,
};
pub use app::{
    ADMIN_TOKEN, Api, TestApp, captured_logs, fresh_database_url, postgres_server, spawn_app,
    spawn_app_with, spawn_with_settings, sqlite_only, test_settings,
};
