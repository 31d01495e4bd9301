//! sea-orm entities: one module per table of `migrations/`. Only the store uses them;
//! the rest of Herald sees the domain types in `crate::domain`.

pub mod api_key;
pub mod event;
pub mod idempotency_key;
pub mod inbox_mark;
pub mod inbox_reader;
pub mod inbox_total;
pub mod presence;
pub mod receipt;
pub mod receipt_position;
pub mod signing_key;
pub mod tenant;
pub mod tenant_usage;
pub mod usage_hour;
pub mod webhook_attempt;
pub mod webhook_endpoint;
pub mod webhook_message;
