//! Herald: a multi-tenant real-time notification server.
//!
//! Tenants' backends publish events over HTTP (`routes::publish`); each is validated
//! (`domain`), authenticated (`auth`) and appended to the tenant's durable log (`store`)
//! before it is acknowledged. `startup::Application` wires it all together; `main.rs` and
//! the tests both start Herald through it.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod fair;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod query;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod startup;
pub mod state;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tls;
