//! The link from one node to the Redis its deployment shares — for the limits, and for the
//! broker's notices (`publish`): a connection kept in the background (a node starts and
//! goes on whether or not Redis answers), under the node's one id, and a heartbeat in a
//! sorted set, so each node knows how many nodes share a limit.
//!
//! Every heartbeat also renews this node's stream counts (`streams`) and, after each
//! (re)connection and every `RESYNC_EVERY` beats, writes them anew from what the node knows
//! itself, so counts lost with a Redis restart, or a decrement that never arrived, mend
//! themselves. A node that stops beating drops out of every count within `NODE_EXPIRY`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, watch};

use super::mirror::StreamMirror;

/// The longest a caller waits for Redis before it does without.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a node renews its heartbeat (and retries a lost connection).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose heartbeat is older than this no longer counts.
pub const NODE_EXPIRY: Duration = Duration::from_secs(5);
/// Beats between two rewrites of this node's stream counts.
const RESYNC_EVERY: u32 = 10;

#[derive(Clone)]
pub struct RedisLink {
    connection: watch::Receiver<Option<MultiplexedConnection>>,
    lost: Arc<Notify>,
    nodes: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
    keys: Keys,
    /// This node's own stream counts, which every heartbeat renews.
    mirror: Arc<StreamMirror>,
}

/// Where a deployment's limits live in Redis.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    node: String,
}

impl Keys {
    pub fn rate(&self, tenant_id: i64) -> String {
        format!("{}:rate:{tenant_id}", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// This node's stream counts.
    pub fn own_streams(&self) -> String {
        self.streams_of(&self.node)
    }

    /// The prefix of every node's stream counts (`<prefix><node>`).
    pub fn streams_prefix(&self) -> String {
        format!("{}:streams:", self.prefix)
    }

    fn streams_of(&self, node: &str) -> String {
        format!("{}{node}", self.streams_prefix())
    }

    pub fn node(&self) -> &str {
        &self.node
    }
}

impl RedisLink {
    /// Connects to `url` in the background, as node `node`, with keys under `prefix`.
    pub fn start(
        url: &str,
        prefix: &str,
        node: String,
        streams: Arc<StreamMirror>,
    ) -> redis::RedisResult<RedisLink> {
        let client = redis::Client::open(url)?;
        let (publish, connection) = watch::channel(None);
        let link = RedisLink {
            connection,
            lost: Arc::new(Notify::new()),
            nodes: Arc::new(AtomicU64::new(1)),
            connected: Arc::new(AtomicBool::new(false)),
            keys: Keys {
                prefix: prefix.to_owned(),
                node,
            },
            mirror: streams,
        };
        tokio::spawn(keep_connected(client, publish, link.clone()));
        Ok(link)
    }

    /// The connection, while Redis answers.
    pub fn connection(&self) -> Option<MultiplexedConnection> {
        self.connection.borrow().clone()
    }

    /// Runs a script within `CALL_TIMEOUT`: `None` while Redis is away, and when it refuses
    /// or does not answer in time — then this node does without it until it answers again.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut connection = self.connection()?;
        self.within(invocation.invoke_async::<T>(&mut connection))
            .await
    }

    /// A call's answer if it comes within `CALL_TIMEOUT`; otherwise, or on an error, `None`
    /// and this node does without Redis until it answers again.
    async fn within<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                self.failed(&error);
                None
            }
            Err(_) => {
                self.failed(&"no answer in time");
                None
            }
        }
    }

    /// Publishes `payload` on `channel` within `CALL_TIMEOUT`; `false` if it could not.
    pub async fn publish(&self, channel: &str, payload: &str) -> bool {
        let Some(mut connection) = self.connection() else {
            return false;
        };
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        self.within(command.query_async::<i64>(&mut connection))
            .await
            .is_some()
    }

    /// What this node has counted of its own open streams.
    pub fn mirror(&self) -> Arc<StreamMirror> {
        self.mirror.clone()
    }

    /// A call failed or timed out: do without Redis until it answers again.
    fn failed(&self, error: &dyn std::fmt::Display) {
        if self.connected.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "limits: Redis does not answer; this node uses its share");
        }
        self.lost.notify_one();
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The nodes sharing the limits when Redis last answered.
    pub fn nodes(&self) -> u64 {
        self.nodes.load(Ordering::Relaxed).max(1)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

/// Keeps a connection to Redis and this node's heartbeat; reconnects after a failure, at
/// once when a call reports one.
async fn keep_connected(
    client: redis::Client,
    publish: watch::Sender<Option<MultiplexedConnection>>,
    link: RedisLink,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut beats = 0u32;
    loop {
        if connection.is_none() {
            let connect = client.get_multiplexed_async_connection();
            connection = tokio::time::timeout(CALL_TIMEOUT * 4, connect)
                .await
                .ok()
                .and_then(Result::ok);
            beats = 0;
        }
        if let Some(redis) = connection.as_mut() {
            let resync = beats.is_multiple_of(RESYNC_EVERY);
            let beat = heartbeat(redis, &link.keys, &link.mirror, resync);
            match tokio::time::timeout(CALL_TIMEOUT * 4, beat).await {
                Ok(Ok(count)) => {
                    beats = beats.wrapping_add(1);
                    link.nodes.store(count.max(1), Ordering::Relaxed);
                    if !link.connected.swap(true, Ordering::Relaxed) {
                        tracing::info!(nodes = count, "limits: shared through Redis");
                    }
                    if publish.borrow().is_none() {
                        publish.send_replace(Some(redis.clone()));
                    }
                }
                _ => {
                    if link.connected.swap(false, Ordering::Relaxed) {
                        tracing::warn!("limits: Redis is unreachable; this node uses its share");
                    }
                    publish.send_replace(None);
                    connection = None;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            () = link.lost.notified() => {
                publish.send_replace(None);
                connection = None;
            }
        }
        if publish.is_closed() {
            return;
        }
    }
}

/// Renews this node's heartbeat and stream counts (writing them anew from `streams` when
/// `resync`), and counts the live nodes.
async fn heartbeat(
    redis: &mut MultiplexedConnection,
    keys: &Keys,
    streams: &StreamMirror,
    resync: bool,
) -> redis::RedisResult<u64> {
    let (now_s, now_us): (i64, i64) = redis::cmd("TIME").query_async(redis).await?;
    let now_ms = now_s * 1000 + now_us / 1000;
    let expired = now_ms - NODE_EXPIRY.as_millis() as i64;
    let own = keys.own_streams();
    let mut pipe = redis::pipe();
    pipe.atomic();
    if resync {
        pipe.cmd("DEL").arg(&own).ignore();
        let counts = streams.counts();
        if !counts.is_empty() {
            pipe.cmd("HSET").arg(&own).arg(counts).ignore();
        }
    }
    let (count,): (u64,) = pipe
        .cmd("PEXPIRE")
        .arg(&own)
        .arg(NODE_EXPIRY.as_millis() as u64 * 3)
        .ignore()
        .cmd("ZADD")
        .arg(keys.nodes())
        .arg(now_ms)
        .arg(keys.node())
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(keys.nodes())
        .arg("-inf")
        .arg(expired)
        .ignore()
        .cmd("ZCARD")
        .arg(keys.nodes())
        .query_async(redis)
        .await?;
    Ok(count)
}
