//! The accept-time router: looks at a new plain-HTTP connection's first request head
//! without consuming it (`MSG_PEEK`) and says who serves the connection.
//!
//! A head usually arrives whole in the first segment, so one peek decides. One still
//! arriving is peeked again after a short pause, up to `MAX_HEAD_BYTES` and `HEAD_WAIT`;
//! past either, and for anything that is not a stream request, the connection goes to
//! actix-web untouched — which reads the same bytes and answers as it always does (a head
//! too large, a slow one, a malformed one get its usual 4xx).

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::head::{MAX_HEAD_BYTES, Peeked, StreamHead, classify};

/// How long the router waits for a stream request's head to be complete.
const HEAD_WAIT: Duration = Duration::from_secs(2);
/// The pause between two peeks at a head still arriving.
const PEEK_PAUSE: Duration = Duration::from_millis(10);

/// Who serves a connection.
#[derive(Debug)]
pub enum Route {
    /// Herald's own stream handler, with the head it read.
    Stream(StreamHead),
    /// actix-web, every byte still unread.
    Actix,
}

/// Peeks at `socket`'s first request head and routes it.
pub async fn route(socket: &TcpStream) -> Route {
    let deadline = Instant::now() + HEAD_WAIT;
    let mut buf = vec![0; MAX_HEAD_BYTES];
    loop {
        let peeked = match tokio::time::timeout_at(deadline, socket.peek(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Route::Actix,
            Ok(Ok(n)) => classify(&buf[..n]),
        };
        match peeked {
            Peeked::Stream(head) => return Route::Stream(head),
            Peeked::Other => return Route::Actix,
            Peeked::Incomplete if Instant::now() + PEEK_PAUSE < deadline => {
                tokio::time::sleep(PEEK_PAUSE).await;
            }
            Peeked::Incomplete => return Route::Actix,
        }
    }
}
