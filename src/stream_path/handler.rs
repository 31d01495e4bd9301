//! Herald's own HTTP/1.1 stream handler: answers a stream request whose head the router
//! has read, writes the stream's opening and replay, then hands the socket to the stream's
//! hub shard, which writes the live part until either side ends it (`hub::shard`).
//!
//! The answer is the same as actix-web's route gives (same rules, `stream_path::request::open`;
//! same headers; the same JSON error bodies), with `Connection: close`: the body runs until
//! the connection closes, so it needs neither chunked encoding nor a dispatcher. A peer
//! that closes its side ends the stream at once, and bytes it sends after the head
//! (pipelined requests) are read and dropped.

use std::fmt::Write as _;

use actix_web::ResponseError;
use actix_web::body::MessageBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;

use super::head::{StreamHead, cookie};
use super::request::{SESSION_COOKIE, StreamPath, StreamRequest, open};
use crate::auth::cors::{CORS_HEADERS, tenant_for_origin};
use crate::error::ApiError;
use crate::hub::Handover;
use crate::hub::connection::Connection;
use crate::state::AppState;
use crate::traces;

/// Serves the stream request `head` on `socket`, whose bytes start with that head.
pub async fn serve(state: &AppState, mut socket: TcpStream, head: StreamHead) {
    // The router only peeked at the head: take it off the socket now.
    let mut taken = vec![0; head.len];
    if socket.read_exact(&mut taken).await.is_err() {
        return;
    }
    drop(taken);
    let trace = traces::stream_open(&head.slug, head.traceparent.as_deref());
    answer(state, socket, head).instrument(trace).await;
}

/// Answers the stream request `head` on `socket`, whose head has been taken off it.
async fn answer(state: &AppState, mut socket: TcpStream, head: StreamHead) {
    let began = Instant::now();
    // Answered in `x-request-id` and logged, as actix-web's path does.
    let request_id = uuid::Uuid::now_v7();
    let (opened, cors) = open_for(state, &head).await;
    // What the stream keeps of its head: the slug, for the log line.
    let tenant = { head }.slug;
    match opened {
        Ok(mut connection) => {
            let answer = answer_head(
                "200 OK",
                "text/event-stream",
                None,
                cors.as_deref(),
                request_id,
            );
            drop(cors);
            if socket.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            let caught_up = catch_up(&mut connection, &mut socket)
                .instrument(traces::replay())
                .await;
            if !caught_up {
                return;
            }
            let handed_over = traces::handover().in_scope(|| connection.hand_over(socket));
            match handed_over {
                Handover::Live => {
                    let seconds = began.elapsed().as_secs_f64();
                    tracing::info!(
                        %tenant, %request_id, status = 200, seconds,
                        "stream opened (Herald's path)"
                    );
                }
                Handover::Ended => {
                    tracing::info!(%tenant, %request_id, "stream ended before it went live")
                }
                Handover::Failed(error) => {
                    tracing::error!(%tenant, %request_id, %error, "cannot hand a stream socket over")
                }
            }
        }
        Err(error) => {
            let status = error.code.status().as_u16();
            let code = error.code.as_str();
            tracing::info!(%tenant, %request_id, status, code, "stream refused (Herald's path)");
            let _ = socket
                .write_all(&error_answer(&error, cors.as_deref(), request_id))
                .await;
            let _ = socket.shutdown().await;
        }
    }
}

/// Writes the stream's opening and replay; `false` if either side ended it meanwhile.
async fn catch_up(connection: &mut Connection, socket: &mut TcpStream) -> bool {
    let (mut reader, mut writer) = socket.split();
    let mut dropped = [0; 64];
    loop {
        tokio::select! {
            chunk = connection.catch_up_chunk() => match chunk {
                Some(chunk) => {
                    if writer.write_all(&chunk).await.is_err() {
                        return false;
                    }
                }
                None => return true,
            },
            read = reader.read(&mut dropped) => match read {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            },
        }
    }
}

/// Applies the stream rules to `head`: the stream, or why not, and the origin to echo on
/// the answer (an allowed one, as the CORS middleware does on actix-web's path).
async fn open_for(
    state: &AppState,
    head: &StreamHead,
) -> (Result<Connection, ApiError>, Option<String>) {
    let origin = head.origin.as_deref();
    match tenant_for_origin(state, &head.slug, origin).await {
        Ok(tenant) => {
            let request = StreamRequest {
                authorization: head.authorization.as_deref(),
                session_cookie: cookie(&head.cookies, SESSION_COOKIE),
                query: &head.query,
                last_event_id: head.last_event_id.as_deref(),
                fetch_mode: head.fetch_mode.as_deref(),
            };
            let opened = open(state, &tenant, request, StreamPath::Herald).await;
            (opened, head.origin.clone())
        }
        Err(error) => (Err(error), None),
    }
}

/// The status line and headers of an answer, through the blank line.
fn answer_head(
    status: &str,
    content_type: &str,
    content_length: Option<usize>,
    cors: Option<&str>,
    request_id: uuid::Uuid,
) -> String {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nx-request-id: {request_id}\r\n"
    );
    if let Some(length) = content_length {
        let _ = write!(head, "content-length: {length}\r\n");
    } else {
        head.push_str("cache-control: no-cache\r\nx-accel-buffering: no\r\n");
    }
    if let Some(origin) = cors {
        let _ = write!(head, "access-control-allow-origin: {origin}\r\n");
        for (name, value) in CORS_HEADERS {
            let _ = write!(head, "{name}: {value}\r\n");
        }
    }
    head.push_str("connection: close\r\n\r\n");
    head
}

/// An error as actix-web would answer it: its status and JSON body.
fn error_answer(error: &ApiError, cors: Option<&str>, request_id: uuid::Uuid) -> Vec<u8> {
    let response = error.error_response();
    let body = response.into_body().try_into_bytes().unwrap_or_default();
    let status = error.code.status();
    let status_line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let head = answer_head(
        &status_line,
        "application/json",
        Some(body.len()),
        cors,
        request_id,
    );
    [head.as_bytes(), &body].concat()
}
