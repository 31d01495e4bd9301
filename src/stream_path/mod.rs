//! Event streams on Herald's own connection path.
//!
//! Plain-HTTP connections are routed when they are accepted (`router`): one whose first
//! request is `GET /t/{slug}/stream` (HTTP/1.1) is served by Herald's own stream handler
//! (`handler`), which answers the head and then writes the stream straight to the socket;
//! every other connection goes to actix-web untouched. TLS connections (and with them
//! HTTP/2), and keep-alive connections whose first request was something else, are served
//! by actix-web's route (`routes::stream`). Both paths apply one set of rules
//! (`request::open`, after `auth::cors::tenant_for_origin`).

pub mod handler;
pub mod head;
pub mod request;
pub mod router;
