//! Outbound webhooks in the store: the tenants' endpoints (`endpoints`) and the outbox of
//! messages to them with every attempt (`outbox`). The node's workers that send them are
//! `crate::webhooks`.

pub mod endpoints;
pub mod outbox;

pub use endpoints::CreateError;
pub use outbox::{Attempt, Claimed, Delivery, Next, Recipients, enqueue};
