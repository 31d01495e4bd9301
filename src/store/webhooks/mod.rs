//! Outbound webhooks in the store: the tenants' endpoints (`endpoints`), the outbox of
//! messages to them (`outbox`), and the log of their attempts (`deliveries`). The node's workers that send them are
//! `crate::webhooks`.

pub mod deliveries;
pub mod endpoints;
pub mod outbox;

pub use deliveries::Delivery;
pub use endpoints::CreateError;
pub use outbox::{Attempt, Claimed, Finished, NewMessage, Next, Recipients, enqueue};
