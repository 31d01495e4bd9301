//! Opening a stream: how a new connection joins the hub and where it starts.
//!
//! The order is the invariant that makes resume exact: the connection registers for live
//! events *first* and reads where the log stands *second*. Every event committed after the
//! registration reaches its queue, and everything before it is in the log, so replaying
//! the log after the resume position and then going live misses nothing; the connection
//! drops live events the replay already sent.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::connection::{Connection, ConnectionParts, Start};
use super::{Hub, HubError, StreamCaps};
use crate::domain::event::EventId;
use crate::domain::identity::UserIdentity;
use crate::domain::log::{LogPosition, Unresumable};
use crate::domain::names::TopicList;
use crate::sse;
use crate::store::log::StreamSelector;

impl Hub {
    /// A stream for `identity` in a tenant: its own events, the tenant's broadcasts and
    /// `topics` (already checked against the token), resumed after `resume_from` (a
    /// `Last-Event-ID`) where that can be done exactly.
    pub async fn open_stream(
        &self,
        tenant_id: i64,
        identity: &UserIdentity,
        topics: TopicList,
        resume_from: Option<&str>,
        caps: StreamCaps,
    ) -> Result<Connection, HubError> {
        let subscription = self
            .subscribe(tenant_id, &identity.user, &topics, &identity.key_id, caps)
            .await?;
        let store = &self.inner.store;
        // A stream that starts at the head takes the user's unread count in the same read
        // as the log's position; one that may replay takes it once the replay is done.
        let (position, unread) = match resume_from {
            None => store
                .unread_and_position(tenant_id, &identity.user)
                .await?
                .map(|(position, unread)| (position, Some(unread))),
            Some(_) => store
                .log_position(tenant_id)
                .await?
                .map(|position| (position, None)),
        }
        .ok_or(HubError::TenantGone)?;
        let settings = &self.inner.settings;
        let mut start = starting_point(resume_from, &position, settings.retry_ms);
        start.unread = unread;
        Ok(Connection::new(
            ConnectionParts {
                store: self.inner.store.clone(),
                tenant_id,
                epoch: position.epoch,
                selector: StreamSelector {
                    user: Some(identity.user.clone()),
                    topics,
                },
                replay_page: settings.replay_page,
                subscription,
                keepalive_every: Duration::from_secs_f64(settings.keepalive_secs),
                expires_at: identity.expires_at,
                shutdown: self.inner.shutdown.clone(),
            },
            start,
        ))
    }
}

/// How the stream opens: resume after a valid id, or start at the log's head — with a
/// `reset` first when the id cannot be resumed from exactly (the page must then refetch
/// its state). Either way the opening carries an id, so that a reconnect resumes from here
/// even if no event came in between.
fn starting_point(resume_from: Option<&str>, position: &LogPosition, retry_ms: u64) -> Start {
    let retry = sse::retry(retry_ms);
    let head_id = position.head_id().to_string();
    let at_head = |opening: Bytes| Start {
        opening,
        replay: false,
        after_seq: position.head(),
        unread: None,
    };
    let reset = |reason: &str| {
        let frame = sse::control(sse::RESET, &json!({ "reason": reason }), Some(&head_id));
        at_head([retry.clone(), frame].concat().into())
    };
    let Some(text) = resume_from else {
        return at_head([retry.clone(), sse::position(&head_id)].concat().into());
    };
    let Ok(id) = text.parse::<EventId>() else {
        return reset("malformed_id");
    };
    match position.resume_after(&id) {
        Ok(after_seq) => Start {
            opening: retry,
            replay: true,
            after_seq,
            unread: None,
        },
        Err(unresumable) => reset(Unresumable::reason(unresumable)),
    }
}
