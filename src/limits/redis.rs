//! The deployment's token buckets, one per tenant, in Redis: every node takes from the same
//! bucket, so a tenant's limit holds however many nodes its publishes reach.
//!
//! One script call per publish runs the GCRA in Redis on Redis's own clock: the bucket is a
//! "theoretical arrival time" (TAT) per tenant, `n` events fit when TAT + n·interval − now
//! ≤ burst·interval, and a refused call changes nothing. Each node also keeps a heartbeat in
//! a sorted set, so it knows how many nodes share the limit. When Redis does not answer
//! within `CALL_TIMEOUT`, or is down, the node answers from its own share of the limit
//! (`limit / nodes`, by local buckets) and says so (`/readyz`, `/metrics`); a background
//! task reconnects, and the shared buckets take over again once Redis answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::local::LocalBuckets;
use super::{Admission, Authority, Rate};

/// The longest a publish waits for Redis before it takes the node's share instead.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How often a node renews its heartbeat (and retries a lost connection).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose heartbeat is older than this no longer counts.
const NODE_EXPIRY: Duration = Duration::from_secs(5);

/// KEYS[1]: the tenant's bucket. ARGV: interval (µs per event), burst, n.
/// Returns {admitted (0/1), remaining, µs until n would fit (refused) or until full}.
const GCRA: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local capacity = burst * interval
local new_tat = tat + n * interval
if new_tat - now > capacity then
  return {0, math.floor((capacity - (tat - now)) / interval), math.ceil(new_tat - now - capacity)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((capacity - (new_tat - now)) / interval), math.ceil(new_tat - now)}
"#;

pub struct SharedBuckets {
    connection: watch::Receiver<Option<redis::aio::MultiplexedConnection>>,
    lost: Arc<tokio::sync::Notify>,
    script: redis::Script,
    /// The nodes that shared the limit when Redis last answered.
    nodes: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
    fallback: LocalBuckets,
    prefix: String,
}

impl SharedBuckets {
    /// Connects to `url` in the background (a node starts whether or not Redis answers)
    /// and keeps this node's heartbeat under `node`.
    pub fn start(url: &str, prefix: &str, node: String) -> redis::RedisResult<SharedBuckets> {
        let client = redis::Client::open(url)?;
        let (publish, connection) = watch::channel(None);
        let lost = Arc::new(tokio::sync::Notify::new());
        let nodes = Arc::new(AtomicU64::new(1));
        let connected = Arc::new(AtomicBool::new(false));
        tokio::spawn(keep_connected(
            client,
            format!("{prefix}:nodes"),
            node,
            publish,
            lost.clone(),
            nodes.clone(),
            connected.clone(),
        ));
        Ok(SharedBuckets {
            connection,
            lost,
            script: redis::Script::new(GCRA),
            nodes,
            connected,
            fallback: LocalBuckets::default(),
            prefix: prefix.to_owned(),
        })
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub async fn admit(&self, tenant_id: i64, rate: Rate, n: u64) -> (Admission, Authority) {
        let connection = self.connection.borrow().clone();
        if let Some(mut connection) = connection {
            let interval_us = 1_000_000.0 / rate.per_sec as f64;
            let mut invocation = self.script.key(format!("{}:rate:{tenant_id}", self.prefix));
            invocation.arg(interval_us).arg(rate.burst).arg(n);
            let call = invocation.invoke_async::<(u8, i64, i64)>(&mut connection);
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok((admitted, remaining, micros))) => {
                    let after = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
                    let admission = match (admitted, n > rate.burst) {
                        (_, true) => Admission::TooLarge,
                        (1, false) => Admission::Admitted {
                            remaining: u64::try_from(remaining).unwrap_or(0),
                            full_in: after,
                        },
                        (_, false) => Admission::Refused { retry_after: after },
                    };
                    return (admission, Authority::Shared);
                }
                Ok(Err(error)) => tracing::warn!(%error, "rate limits: Redis refused a call"),
                Err(_) => tracing::warn!("rate limits: Redis did not answer in time"),
            }
            self.connected.store(false, Ordering::Relaxed);
            self.lost.notify_one();
        }
        let share = rate.share(self.nodes.load(Ordering::Relaxed));
        (
            self.fallback.admit(tenant_id, share, n),
            Authority::Fallback,
        )
    }
}

/// Keeps a connection to Redis for the buckets and this node's heartbeat in the set of
/// nodes; reconnects after a failure, at once when a call reports one.
async fn keep_connected(
    client: redis::Client,
    nodes_key: String,
    node: String,
    publish: watch::Sender<Option<redis::aio::MultiplexedConnection>>,
    lost: Arc<tokio::sync::Notify>,
    nodes: Arc<AtomicU64>,
    connected: Arc<AtomicBool>,
) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        if connection.is_none() {
            connection =
                tokio::time::timeout(CALL_TIMEOUT * 4, client.get_multiplexed_async_connection())
                    .await
                    .ok()
                    .and_then(Result::ok);
        }
        if let Some(redis) = connection.as_mut() {
            match tokio::time::timeout(CALL_TIMEOUT * 4, heartbeat(redis, &nodes_key, &node)).await
            {
                Ok(Ok(count)) => {
                    nodes.store(count.max(1), Ordering::Relaxed);
                    if !connected.swap(true, Ordering::Relaxed) {
                        tracing::info!(nodes = count, "rate limits: shared through Redis");
                        publish.send_replace(Some(redis.clone()));
                    }
                }
                _ => {
                    if connected.swap(false, Ordering::Relaxed) {
                        tracing::warn!(
                            "rate limits: Redis is unreachable; this node uses its share"
                        );
                    }
                    publish.send_replace(None);
                    connection = None;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            () = lost.notified() => {
                publish.send_replace(None);
                connection = None;
            }
        }
        if publish.is_closed() {
            return;
        }
    }
}

/// Renews this node's heartbeat and counts the live nodes.
async fn heartbeat(
    redis: &mut redis::aio::MultiplexedConnection,
    nodes_key: &str,
    node: &str,
) -> redis::RedisResult<u64> {
    let (now_s, now_us): (i64, i64) = redis::cmd("TIME").query_async(redis).await?;
    let now_ms = now_s * 1000 + now_us / 1000;
    let expired = now_ms - NODE_EXPIRY.as_millis() as i64;
    let (_, _, count): (i64, i64, u64) = redis::pipe()
        .cmd("ZADD")
        .arg(nodes_key)
        .arg(now_ms)
        .arg(node)
        .cmd("ZREMRANGEBYSCORE")
        .arg(nodes_key)
        .arg("-inf")
        .arg(expired)
        .cmd("ZCARD")
        .arg(nodes_key)
        .query_async(redis)
        .await?;
    Ok(count)
}
