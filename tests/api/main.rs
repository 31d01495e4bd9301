//! Herald's end-to-end tests: one binary (so one link), one module per area. Each test
//! spawns Herald on port 0 with its own SQLite database (or PostgreSQL, see
//! `support/app.rs`) and
//! talks to it over real HTTP.

mod admin;
mod auth;
mod backup;
mod bad_input;
mod browser;
mod browser_library;
mod cli;
mod cluster;
mod config;
mod console;
mod contract;
mod docs;
mod fairness;
mod health;
mod idempotency;
mod inbox;
mod isolation;
mod lifecycle;
mod limits;
mod openapi;
mod presence;
mod publish;
mod receipts;
mod resume;
mod revocation;
mod rolling_upgrade;
mod sequence;
mod session;
mod storage;
mod stream;
mod stream_path;
mod support;
mod tls;
mod traces;
mod upgrades;
mod watching;
mod webhooks;
