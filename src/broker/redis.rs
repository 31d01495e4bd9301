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
//! The same channel carries every other `Notice`: a revoked signing key or a removed tenant
//! ends the streams it concerns on every node, any change drops what nodes keep in memory
//! about the tenant (see `store::credentials`), unread counts reach the user's streams. A
//! node that misses such a notice keeps those streams until their tokens expire; it keeps
//! nothing in memory about tenants while it is not subscribed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Broker;
use super::notice::{Envelope, Notice, WireEvent};
use super::sequencer::{Sequencer, Work};

use crate::domain::log::LoggedEvent;
use crate::hub::Hub;
use crate::limits::redis::RedisLink;
use crate::store::credentials::Credentials;
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

#[derive(Clone)]
pub struct BrokerSettings {
    pub url: String,
    /// The process's link to Redis: notices are published through it, as this node.
    pub link: RedisLink,
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
        let node = settings.link.keys().node().to_owned();
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
            settings.link.clone(),
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
}

impl Broker for RedisBroker {
    fn publish(&self, notice: Notice) {
        let envelope = Envelope {
            node: self.node.to_string(),
            notice,
        };
        match serde_json::to_string(&envelope) {
            Ok(json) => {
                let _ = self.outbox.send(json);
            }
            Err(error) => tracing::error!(%error, "cannot encode a broker notice"),
        }
    }

    /// Whether this node is subscribed to Redis right now.
    fn connected(&self) -> Option<bool> {
        Some(self.subscribed.load(Ordering::Relaxed))
    }

    fn stats(&self) -> Option<&BrokerStats> {
        Some(&self.stats)
    }
}

impl CommitListener for RedisBroker {
    fn committed(&self, events: &[&LoggedEvent]) {
        if events.is_empty() {
            return;
        }
        self.publish(Notice::committed(events));
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

/// Publishes this node's notices through the process's Redis link. A notice that cannot be
/// sent is dropped: the other nodes find the gap it leaves (see the module's comment).
async fn publish(
    link: RedisLink,
    channel: String,
    mut notices: mpsc::UnboundedReceiver<String>,
    stats: Arc<BrokerStats>,
) {
    while let Some(notice) = notices.recv().await {
        if !link.publish(&channel, &notice).await {
            stats.notices_dropped.fetch_add(1, Ordering::Relaxed);
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
                        let Notice::Committed { events } = notice else {
                            notice.apply(&hub, &credentials);
                            continue;
                        };
                        let Some(events) = events
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
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(%error, "broker: unreadable notice on the Redis channel");
            return None;
        }
    };
    (envelope.node != node).then_some(envelope.notice)
}
