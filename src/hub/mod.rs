//! The hub: who is listening, and getting each committed event to them.
//!
//! Connections are spread over shard actors, one per core, each on its own thread
//! (`Arbiter`). A connection lives on the shard its `(tenant, user)` hashes to, so all of a
//! user's tabs share one shard and the per-user cap is exact there. After every commit the
//! event log hands the committed events to `Hub::committed`: each is encoded to SSE bytes
//! once, and one message carrying the whole group goes to every shard. Each shard delivers
//! to its own connections by cloning the shared buffer into their bounded queues (one
//! entry per commit group); no actor or lock sits on the path of every event. A queue that
//! is full means a connection that cannot keep up: the shard drops it (its stream ends,
//! the browser reconnects and resumes from the log) and counts it.

pub mod connection;
mod deadlines;
mod inbox;
mod index;
pub mod ledger;
mod live;
mod open;
mod reactor;
mod shard;
mod sink;
mod slots;
mod socket;
mod stats;

pub use shard::Handover;
pub use slots::PendingTransitions;
pub use stats::{HubStats, OpenedByPath, TenantCounts};

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, Addr, Arbiter};
use bytes::Bytes;
use opentelemetry::trace::SpanContext;
use tokio::sync::mpsc;

use crate::config::StreamSettings;
use crate::domain::event::Target;
use crate::domain::inbox::Unread;
use crate::domain::log::LoggedEvent;
use crate::domain::names::{TopicList, UserId};
use crate::shutdown::Shutdown;
use crate::sse;
use crate::store::log::CommitListener;
use crate::store::{Store, StoreError};
use crate::tail::Tail;
use shard::{Deliver, EndStreams, InboxChanged, InboxPruned, Register, Shard, Unregister};
use slots::TenantSlots;

/// One event ready for the wire, shared by every connection it goes to.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    pub seq: i64,
    pub bytes: Bytes,
    /// An item of the inbox of the user it goes to (see `hub::inbox`).
    pub inbox: bool,
}

/// One entry of a stream's queue: what one commit group holds for the stream (a queue
/// counts groups, not events, so a big batch is one entry and only a stream that falls
/// behind by many commits counts as slow), its last frame, or an unread-count change.
#[derive(Debug)]
pub enum Queued {
    One(LiveFrame),
    Many(Vec<LiveFrame>),
    /// The stream's last frame (its session is over): write it and end.
    End(Bytes),
    /// The user's unread count, answered to a read or unread (see `hub::inbox`).
    Inbox(crate::domain::inbox::Unread),
    /// Take the user's unread count afresh (retention removed some of the tenant's items).
    Recount,
}

impl Queued {
    /// The live frames, in order (none in a stream's last frame).
    fn as_slice(&self) -> &[LiveFrame] {
        match self {
            Queued::One(frame) => std::slice::from_ref(frame),
            Queued::Many(frames) => frames,
            Queued::End(_) | Queued::Inbox(_) | Queued::Recount => &[],
        }
    }

    fn push(&mut self, frame: LiveFrame) {
        match self {
            Queued::One(first) => {
                let first = first.clone();
                *self = Queued::Many(vec![first, frame]);
            }
            Queued::Many(frames) => frames.push(frame),
            Queued::End(_) | Queued::Inbox(_) | Queued::Recount => {}
        }
    }
}

/// One committed event with where it goes.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub tenant_id: i64,
    pub target: Target,
    pub frame: LiveFrame,
    /// Its publish's place in a recorded trace: a shard traces one stream's write of it.
    pub trace: Option<Arc<SpanContext>>,
}

/// How many streams a tenant, and one of its users, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCaps {
    pub per_tenant: usize,
    pub per_user: usize,
}

impl StreamCaps {
    pub fn of(limits: &crate::domain::limits::EffectiveLimits) -> StreamCaps {
        StreamCaps {
            per_tenant: usize::try_from(limits.max_streams).unwrap_or(usize::MAX),
            per_user: usize::try_from(limits.max_streams_per_user).unwrap_or(usize::MAX),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("this user has too many open streams")]
    TooManyForUser,
    #[error("this tenant has too many open streams")]
    TooManyForTenant,
    #[error("the hub is shutting down")]
    Stopped,
    /// The tenant was removed while its stream was being opened.
    #[error("the tenant is gone")]
    TenantGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    shards: Vec<Addr<Shard>>,
    arbiters: Vec<Arbiter>,
    stats: Arc<HubStats>,
    slots: Arc<TenantSlots>,
    next_connection: AtomicU64,
    settings: StreamSettings,
    /// Where streams replay from.
    store: Store,
    /// Ends every stream when Herald stops.
    shutdown: Shutdown,
    /// Whoever watches a tenant sees its committed events.
    tail: Arc<Tail>,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

impl Hub {
    /// Starts one shard per core, each on a thread of its own; `ledger`, with several
    /// nodes, counts streams across them.
    pub fn start(
        settings: &StreamSettings,
        store: Store,
        shutdown: Shutdown,
        ledger: Option<Arc<dyn ledger::StreamLedger>>,
        transitions: Option<Arc<PendingTransitions>>,
        tail: Arc<Tail>,
    ) -> std::io::Result<Hub> {
        let count = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stats = Arc::new(HubStats::default());
        let slots = Arc::new(TenantSlots::new(ledger, transitions));
        let mut shards = Vec::with_capacity(count);
        let mut arbiters = Vec::with_capacity(count);
        for _ in 0..count {
            let arbiter = Arbiter::new();
            let shard = Shard::new(
                stats.clone(),
                slots.clone(),
                settings,
                shutdown.clone(),
                store.clone(),
                tail.clone(),
            )?;
            shards.push(Shard::start_in_arbiter(&arbiter.handle(), move |_| shard));
            arbiters.push(arbiter);
        }
        Ok(Hub {
            inner: Arc::new(HubInner {
                shards,
                arbiters,
                stats,
                slots,
                next_connection: AtomicU64::new(1),
                settings: settings.clone(),
                store,
                shutdown,
                tail,
            }),
        })
    }

    /// Each tenant's open streams on this node.
    pub fn open_streams(&self) -> HashMap<i64, usize> {
        self.inner.slots.snapshot()
    }

    /// A tenant's open streams across the deployment.
    pub async fn tenant_streams(&self, tenant_id: i64) -> u64 {
        self.inner.slots.open_streams(tenant_id).await
    }

    /// Who watches which tenant's committed events.
    pub fn tail(&self) -> &Arc<Tail> {
        &self.inner.tail
    }

    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// Each of `users`' open streams across the deployment: this node's, and the other
    /// nodes' where they can be counted now.
    pub async fn user_streams(&self, tenant_id: i64, users: &[String]) -> Vec<u64> {
        match self.user_streams_counted(tenant_id, users).await {
            Some(counted) => counted,
            None => self.inner.slots.user_streams_here(tenant_id, users),
        }
    }

    /// As `user_streams`, but `None` when the other nodes' streams cannot be counted now
    /// (Redis does not answer), rather than this node's alone.
    pub async fn user_streams_counted(&self, tenant_id: i64, users: &[String]) -> Option<Vec<u64>> {
        let elsewhere = self.user_streams_elsewhere(tenant_id, users).await?;
        let here = self.inner.slots.user_streams_here(tenant_id, users);
        Some(here.iter().zip(elsewhere).map(|(h, e)| h + e).collect())
    }

    /// Each of `users`' open streams on the other nodes (none when this node runs alone);
    /// `None` when they cannot be counted now.
    pub async fn user_streams_elsewhere(
        &self,
        tenant_id: i64,
        users: &[String],
    ) -> Option<Vec<u64>> {
        self.inner
            .slots
            .user_streams_elsewhere(tenant_id, users)
            .await
    }

    /// The shard that holds every stream of a user (so that the user's own events wake
    /// that shard alone).
    fn shard_for(&self, tenant_id: i64, user: &str) -> &Addr<Shard> {
        &self.inner.shards[self.shard_index(tenant_id, user)]
    }

    fn shard_index(&self, tenant_id: i64, user: &str) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (tenant_id, user).hash(&mut hasher);
        hasher.finish() as usize % self.inner.shards.len()
    }

    /// Which shards a group goes to: a user's events only to the shard of that user's
    /// streams, a topic's or a broadcast to every shard.
    fn shards_wanted(&self, batch: &[Delivery]) -> Vec<bool> {
        let mut wanted = vec![false; self.inner.shards.len()];
        for delivery in batch {
            match &delivery.target {
                Target::User(user) => {
                    wanted[self.shard_index(delivery.tenant_id, user.as_str())] = true
                }
                Target::Topic(_) | Target::Broadcast => {
                    wanted.fill(true);
                    break;
                }
            }
        }
        wanted
    }

    /// Ends the tenant's open streams on this node — those whose token `key_id` vouched
    /// for, or all of them — each with a last `session-expired` saying `reason`.
    pub fn end_streams(&self, tenant_id: i64, key_id: Option<&str>, reason: &str) {
        let last = sse::session_expired(reason);
        for shard in &self.inner.shards {
            shard.do_send(EndStreams {
                tenant_id,
                key_id: key_id.map(str::to_owned),
                last: last.clone(),
            });
        }
    }

    /// A read or unread changed the user's unread count: their streams on this node say so
    /// (see `hub::inbox`).
    pub fn inbox_changed(&self, tenant_id: i64, user: &UserId, unread: Unread) {
        self.shard_for(tenant_id, user.as_str())
            .do_send(InboxChanged {
                tenant_id,
                user: user.as_str().into(),
                unread,
            });
    }

    /// Retention removed some of the tenant's inbox items: every stream of the tenant on
    /// this node takes its count afresh.
    pub fn inbox_pruned(&self, tenant_id: i64) {
        for shard in &self.inner.shards {
            shard.do_send(InboxPruned { tenant_id });
        }
    }

    /// Registers a connection for a user's own events, the tenant's broadcasts and
    /// `topics`, opened with a token that the signing key `key_id` vouched for, unless the
    /// tenant or the user holds as many streams as `caps` allow. Events committed from the
    /// moment this returns are in the subscription's queue.
    pub async fn subscribe(
        &self,
        tenant_id: i64,
        user: &UserId,
        topics: &TopicList,
        key_id: &str,
        caps: StreamCaps,
    ) -> Result<Subscription, HubError> {
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        // This node's own cap holds whatever the tenant is allowed.
        let node_max = self.inner.settings.max_connections_per_tenant;
        self.inner
            .slots
            .reserve(id, tenant_id, user.as_str(), caps, node_max)
            .await?;
        // From here on the guard gives the tenant's slot back, whatever happens.
        let shard = self.shard_for(tenant_id, user.as_str()).clone();
        let guard = SubscriptionGuard {
            slots: self.inner.slots.clone(),
            shard: shard.clone(),
            tenant_id,
            id,
            registered: false,
            handed_over: false,
        };
        let (sender, frames) = mpsc::channel(self.inner.settings.queue_capacity);
        let registered = shard
            .send(Register {
                id,
                tenant_id,
                user: user.as_str().to_owned(),
                topics: topics.names(),
                key_id: key_id.into(),
                sender,
                max_per_user: caps.per_user,
            })
            .await
            .map_err(|_| HubError::Stopped)?;
        registered?;
        let mut guard = guard;
        guard.registered = true;
        Ok(Subscription { frames, guard })
    }
}

impl CommitListener for Hub {
    /// Encodes each event once and hands the group, in commit order, to every shard with
    /// a stream it may go to.
    fn committed(&self, events: &[&LoggedEvent]) {
        if events.is_empty() {
            return;
        }
        self.inner.tail.committed(events);
        let batch: Arc<Vec<Delivery>> = Arc::new(
            events
                .iter()
                .map(|event| Delivery {
                    tenant_id: event.tenant_id,
                    target: event.target.clone(),
                    frame: LiveFrame {
                        seq: event.id.seq,
                        bytes: sse::encode(event),
                        inbox: event.inbox,
                    },
                    trace: event.trace.clone(),
                })
                .collect(),
        );
        let wanted = self.shards_wanted(&batch);
        for (shard, wanted) in self.inner.shards.iter().zip(wanted) {
            if wanted {
                shard.do_send(Deliver(batch.clone()));
            }
        }
    }
}

/// A registered connection's queue of live frames. Dropping it unregisters the connection.
pub struct Subscription {
    pub frames: mpsc::Receiver<Queued>,
    guard: SubscriptionGuard,
}

struct SubscriptionGuard {
    slots: Arc<TenantSlots>,
    shard: Addr<Shard>,
    tenant_id: i64,
    id: u64,
    registered: bool,
    /// The shard owns the stream now, and unregisters it and gives its slot back itself.
    handed_over: bool,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        if self.registered {
            self.shard.do_send(Unregister { id: self.id });
        }
        self.slots.release(self.tenant_id, self.id);
    }
}
