//! `GET /v1/tail`: a tenant's live tail (`crate::tail`) as Server-Sent Events — an `event`
//! frame for each event as it is committed, a `notice` frame for each thing Herald did
//! about the tenant, a `dropped` frame when this watcher was too slow to take some, and a
//! comment every 15 s so that proxies keep the connection. It ends when Herald stops.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use futures_util::stream;

use crate::auth::Publisher;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::sse;
use crate::state::AppState;
use crate::tail::{MAX_WATCHERS_PER_TENANT, Watching, dropped_frame};

const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[utoipa::path(get, path = "/v1/tail", tag = "tenant backend",
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "`event` frames (`{\"id\",\"to\",\"type\",\"size\",\"inbox\",\"created_at\",\"data\"}`) as events are committed; `notice` frames (`{\"kind\",\"at\",…}`: `stream_closed_slow`, `stream_refused`, `rate_limited`, `webhook_failed`); `dropped` (`{\"count\"}`) when frames were lost to a slow reader"),
        (status = 401, description = "missing or wrong API key", body = ErrorBody),
        (status = 429, description = "`too_many_streams`: the tenant has 16 tails open", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn tail(
    publisher: Publisher,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(watching) = state.hub.tail().watch(publisher.tenant.id) else {
        return Err(ApiError::new(
            ErrorCode::TooManyStreams,
            format!("a tenant may have {MAX_WATCHERS_PER_TENANT} tails open"),
        ));
    };
    let feed = Feed {
        stopping: Box::pin(state.shutdown.clone().wait()),
        watching,
        publisher,
        state,
        opened: false,
    };
    let body = stream::unfold(feed, |mut feed| async move {
        let frame = feed.next().await?;
        Some((Ok::<Bytes, actix_web::Error>(frame), feed))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// One watcher's frames, in the order it is to get them.
struct Feed {
    watching: Watching,
    stopping: Pin<Box<dyn Future<Output = ()>>>,
    /// Checked again whenever the tenant changes: a revoked key ends the tail at once.
    publisher: Publisher,
    state: web::Data<AppState>,
    opened: bool,
}

impl Feed {
    /// The next frame; `None` ends the response.
    async fn next(&mut self) -> Option<Bytes> {
        if !self.opened {
            // Sent at once, so that the watcher knows the tail is open before any event.
            self.opened = true;
            return Some(sse::keep_alive());
        }
        let dropped = self.watching.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            return Some(dropped_frame(dropped));
        }
        loop {
            tokio::select! {
                frame = self.watching.frames.recv() => return frame,
                () = tokio::time::sleep(KEEP_ALIVE) => return Some(sse::keep_alive()),
                () = &mut self.stopping => return None,
                () = self.watching.changed.notified() => {
                    // A check that cannot be made (the database away) ends the tail too.
                    if !self.publisher.still_valid(&self.state).await.unwrap_or(false) {
                        return None;
                    }
                }
            }
        }
    }
}
