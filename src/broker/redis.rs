//! The Redis side of several nodes: with `redis.url` set, every node publishes a notice
//! of each group it commits on one pub/sub channel and listens there for the others'.
//! Both its own groups and the others' go to the node's `Sequencer`, which hands them to
//! the hub in seq order.
//!
//! Redis pub/sub is at-most-once, so a notice only ever says "this happened": the log in
//! the database stays the truth, and the sequencer reads whatever no notice brought. After
//! every (re)subscription, and every `catch_up_secs` in any case, it is asked to catch up,
//! since notices sent while this node was not subscribed are gone.
//!
//! The same channel carries changes to tenants: a revoked signing key or a removed tenant
//! ends the streams it concerns on every node (`RedisBroker::end_streams`), and any change
//! drops what nodes keep in memory about the tenant (`RedisBroker::tenant_changed`, see
//! `store::credentials`). A node that misses such a notice keeps those streams until their
//! tokens expire; it keeps nothing in memory about tenants while it is not subscribed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::sequencer::{Sequencer, Work};

use crate::domain::event::{EventId, Target};
use crate::domain::log::LoggedEvent;
use crate::domain::names::UserId;
use crate::hub::Hub;
use crate::store::credentials::Credentials;
use crate::store::inbox::Unread;
use crate::store::log::CommitListener;
use crate::store::{Store, StoreError};

/// The wait before reconnecting to Redis grows to this.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The node's broker: the event log hands it every committed group.
#[derive(Clone)]
pub struct RedisBroker {
    /// This node's name in its notices (a new one each start), so it skips its own.
    node: Arc<str>,
    work: mpsc::UnboundedSender<Work>,
    outbox: mpsc::UnboundedSender<String>,
    subscribed: Arc<AtomicBool>,
    stats: Arc<BrokerStats>,
}

/// What the broker has done since the node started (for `/metrics`).
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Other nodes' notices taken from Redis.
    pub notices_received: AtomicU64,
    /// This node's notices that could not be published.
    pub notices_dropped: AtomicU64,
    /// Events read from the database because no notice brought them.
    pub events_read_from_log: AtomicU64,
}

/// One notice on the Redis channel: a commit group of one node, or sessions it ended.
#[derive(Serialize, Deserialize)]
struct Notice {
    node: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<WireEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ended: Option<EndedSessions>,
    /// A tenant whose settings or keys changed: what nodes kept about it is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed_tenant: Option<i64>,
    /// A user's unread count, answered to a read or unread on the sending node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inbox: Option<InboxNotice>,
    /// A tenant some of whose inbox items retention removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inbox_pruned: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct InboxNotice {
    tenant: i64,
    user: String,
    unread: i64,
    as_of_seq: i64,
    version: i64,
    pruned_seq: i64,
}

/// Streams whose sessions are over: the tenant's, or only those of one signing key.
#[derive(Serialize, Deserialize)]
struct EndedSessions {
    tenant: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct WireEvent {
    tenant: i64,
    epoch: String,
    seq: i64,
    kind: String,
    target: String,
    #[serde(rename = "type")]
    event_type: String,
    data: String,
    created_at: i64,
    #[serde(default)]
    inbox: bool,
}

impl WireEvent {
    fn from_event(event: &LoggedEvent) -> WireEvent {
        WireEvent {
            tenant: event.tenant_id,
            epoch: event.id.epoch.clone(),
            seq: event.id.seq,
            kind: event.target.kind().to_owned(),
            target: event.target.name().to_owned(),
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            created_at: event.created_at,
            inbox: event.inbox,
        }
    }

    fn into_event(self) -> Option<LoggedEvent> {
        Some(LoggedEvent {
            tenant_id: self.tenant,
            id: EventId {
                epoch: self.epoch,
                seq: self.seq,
            },
            target: Target::from_columns(&self.kind, &self.target)?,
            event_type: self.event_type,
            data: self.data,
            created_at: self.created_at,
            inbox: self.inbox,
        })
    }
}

#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub url: String,
    pub channel: String,
    pub catch_up_every: Duration,
}

impl RedisBroker {
    /// Starts the sequencer, the Redis subscriber and the publisher on the current runtime;
    /// call it before the event log starts, so every commit after it is seen. A Redis that
    /// cannot be reached now is retried in the background; until it answers, `/readyz`
    /// says so and events from other nodes arrive through the periodic catch-up.
    pub async fn start(
        settings: BrokerSettings,
        store: Store,
        hub: Hub,
        credentials: Credentials,
    ) -> Result<RedisBroker, BrokerError> {
        let client = redis::Client::open(settings.url.as_str())?;
        // Where each tenant stands now: streams opened on this node read the log up to at
        // least that, and everything after reaches them through the sequencer.
        let delivered: HashMap<i64, i64> = store
            .log_heads()
            .await?
            .into_iter()
            .map(|(tenant, _, head)| (tenant, head))
            .collect();
        let node = uuid::Uuid::now_v7().simple().to_string();
        let (work, queue) = mpsc::unbounded_channel();
        let (outbox, notices) = mpsc::unbounded_channel();
        let subscribed = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(BrokerStats::default());
        let hub_for_notices = hub.clone();
        credentials.hearing_changes(false);
        let sequencer = Sequencer {
            store,
            hub,
            delivered,
            stats: stats.clone(),
        };
        tokio::spawn(sequencer.run(queue));
        tokio::spawn(publish(
            client.clone(),
            settings.channel.clone(),
            notices,
            stats.clone(),
        ));
        tokio::spawn(subscribe(Subscriber {
            client,
            channel: settings.channel,
            node: node.clone(),
            work: work.clone(),
            hub: hub_for_notices,
            credentials,
            subscribed: subscribed.clone(),
            stats: stats.clone(),
        }));
        let catch_up = work.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(settings.catch_up_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if catch_up.send(Work::CatchUp).is_err() {
                    break;
                }
            }
        });
        Ok(RedisBroker {
            node: node.into(),
            work,
            outbox,
            subscribed,
            stats,
        })
    }

    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Tells the other nodes to end these streams, as this node's hub has (`Hub::end_streams`).
    pub fn end_streams(&self, tenant_id: i64, key_id: Option<&str>, reason: &str) {
        let notice = Notice {
            node: self.node.to_string(),
            events: Vec::new(),
            ended: Some(EndedSessions {
                tenant: tenant_id,
                key_id: key_id.map(str::to_owned),
                reason: reason.to_owned(),
            }),
            changed_tenant: Some(tenant_id),
            inbox: None,
            inbox_pruned: None,
        };
        self.send(&notice);
    }

    /// Tells the other nodes to drop what they kept about the tenant (`Credentials`).
    pub fn tenant_changed(&self, tenant_id: i64) {
        let notice = Notice {
            node: self.node.to_string(),
            events: Vec::new(),
            ended: None,
            changed_tenant: Some(tenant_id),
            inbox: None,
            inbox_pruned: None,
        };
        self.send(&notice);
    }

    /// Tells the other nodes a user's unread count after a read or unread here.
    pub fn inbox_changed(&self, tenant_id: i64, user: &UserId, unread: Unread) {
        let notice = Notice {
            node: self.node.to_string(),
            events: Vec::new(),
            ended: None,
            changed_tenant: None,
            inbox: Some(InboxNotice {
                tenant: tenant_id,
                user: user.as_str().to_owned(),
                unread: unread.count,
                as_of_seq: unread.as_of_seq,
                version: unread.version,
                pruned_seq: unread.pruned_seq,
            }),
            inbox_pruned: None,
        };
        self.send(&notice);
    }

    /// Tells the other nodes that retention removed some of the tenant's inbox items.
    pub fn inbox_pruned(&self, tenant_id: i64) {
        let notice = Notice {
            node: self.node.to_string(),
            events: Vec::new(),
            ended: None,
            changed_tenant: None,
            inbox: None,
            inbox_pruned: Some(tenant_id),
        };
        self.send(&notice);
    }

    fn send(&self, notice: &Notice) {
        match serde_json::to_string(notice) {
            Ok(json) => {
                let _ = self.outbox.send(json);
            }
            Err(error) => tracing::error!(%error, "cannot encode a broker notice"),
        }
    }

    /// Whether this node is subscribed to Redis right now.
    pub fn is_connected(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }
}

impl CommitListener for RedisBroker {
    fn committed(&self, events: &[&LoggedEvent]) {
        if events.is_empty() {
            return;
        }
        let notice = Notice {
            node: self.node.to_string(),
            events: events.iter().map(|e| WireEvent::from_event(e)).collect(),
            ended: None,
            changed_tenant: None,
            inbox: None,
            inbox_pruned: None,
        };
        self.send(&notice);
        let _ = self.work.send(Work::Committed(
            events.iter().map(|e| (*e).clone()).collect(),
        ));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("redis.url: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Publishes this node's notices, reconnecting as needed. A notice that cannot be sent is
/// dropped: the other nodes find the gap it leaves (see the module's comment).
async fn publish(
    client: redis::Client,
    channel: String,
    mut notices: mpsc::UnboundedReceiver<String>,
    stats: Arc<BrokerStats>,
) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    while let Some(notice) = notices.recv().await {
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let Some(redis) = connection.as_mut() else {
            stats.notices_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&notice)
            .query_async(redis)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, "broker: cannot publish to Redis; reconnecting");
            stats.notices_dropped.fetch_add(1, Ordering::Relaxed);
            connection = None;
        }
    }
}

/// What the subscriber task needs: where to listen, and where the notices go.
struct Subscriber {
    client: redis::Client,
    channel: String,
    /// This node's id: its own notices come back on the channel and are skipped.
    node: String,
    /// The sequencer's queue, for other nodes' events and catch-ups.
    work: mpsc::UnboundedSender<Work>,
    hub: Hub,
    credentials: Credentials,
    subscribed: Arc<AtomicBool>,
    stats: Arc<BrokerStats>,
}

/// Listens for the other nodes' notices; after every (re)subscription, asks for a catch-up,
/// since notices sent while this node was not subscribed are gone.
async fn subscribe(subscriber: Subscriber) {
    let Subscriber {
        client,
        channel,
        node,
        work,
        hub,
        credentials,
        subscribed,
        stats,
    } = subscriber;
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    subscribed.store(true, Ordering::Relaxed);
                    credentials.hearing_changes(true);
                    tracing::info!("broker: subscribed to Redis");
                    if work.send(Work::CatchUp).is_err() {
                        return;
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Some(notice) = remote_notice(message.get_payload_bytes(), &node) else {
                            continue;
                        };
                        stats.notices_received.fetch_add(1, Ordering::Relaxed);
                        if let Some(tenant) = notice.changed_tenant {
                            credentials.forget_tenant(tenant);
                        }
                        if let Some(ended) = notice.ended {
                            hub.end_streams(ended.tenant, ended.key_id.as_deref(), &ended.reason);
                        }
                        if let Some(inbox) = notice.inbox
                            && let Ok(user) = UserId::parse(inbox.user)
                        {
                            let unread = Unread {
                                count: inbox.unread,
                                as_of_seq: inbox.as_of_seq,
                                version: inbox.version,
                                pruned_seq: inbox.pruned_seq,
                            };
                            hub.inbox_changed(inbox.tenant, &user, unread);
                        }
                        if let Some(tenant) = notice.inbox_pruned {
                            hub.inbox_pruned(tenant);
                        }
                        if notice.events.is_empty() {
                            continue;
                        }
                        let Some(events) = notice
                            .events
                            .into_iter()
                            .map(WireEvent::into_event)
                            .collect::<Option<Vec<_>>>()
                        else {
                            tracing::warn!("broker: a notice with an unreadable event");
                            continue;
                        };
                        if work.send(Work::Committed(events)).is_err() {
                            return;
                        }
                    }
                    subscribed.store(false, Ordering::Relaxed);
                    credentials.hearing_changes(false);
                    tracing::warn!("broker: lost the Redis subscription; reconnecting");
                }
                Err(error) => tracing::warn!(%error, "broker: cannot subscribe to Redis"),
            },
            Err(error) => tracing::warn!(%error, "broker: cannot reach Redis"),
        }
        if work.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Another node's notice; `None` for this node's own and for anything unreadable.
fn remote_notice(payload: &[u8], node: &str) -> Option<Notice> {
    let notice: Notice = match serde_json::from_slice(payload) {
        Ok(notice) => notice,
        Err(error) => {
            tracing::warn!(%error, "broker: unreadable notice on the Redis channel");
            return None;
        }
    };
    (notice.node != node).then_some(notice)
}
