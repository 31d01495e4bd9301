//! The demo tenant, for a newcomer's first minutes with Herald (`local` only).
//!
//! A first `local` start creates the `demo` tenant with an API key and an HS256 signing
//! key (`seed`), and serves the tenant's web page on a second origin (`page`): a page on
//! another origin than Herald, exactly as a tenant's would be, with the one thing a
//! tenant's backend does for its page — minting user tokens.

mod page;
mod seed;

pub use page::page_server;
pub use seed::{DEMO_SLUG, DemoCredentials, seed_tenant};
