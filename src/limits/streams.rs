//! A tenant's stream caps across the deployment: every node counts its own open streams in
//! a Redis hash of its own (`t:<tenant>` and `u:<tenant>:<user>`), and a stream opens only
//! if the sums over the live nodes leave room — checked and counted in one script call.
//!
//! The node also keeps what it counted (`StreamMirror`): the heartbeat writes it anew now
//! and then, so lost decrements and a Redis restart mend themselves, and while Redis does
//! not answer the node checks against it alone, with its share of the tenant's cap.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::mirror::StreamMirror;
use super::redis::{NODE_EXPIRY, RedisLink};
use crate::hub::ledger::{Pending, StreamLedger};
use crate::hub::{HubError, StreamCaps};

/// KEYS[1]: the live nodes (sorted set), KEYS[2]: this node's counts. ARGV: the prefix of
/// every node's counts, the tenant field, the user field, the tenant's cap, the user's cap,
/// how old a heartbeat may be (ms), this node's id.
/// Returns 0 (counted), 1 (the tenant is at its cap) or 2 (the user is).
const RESERVE: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[6]), '+inf')
table.insert(nodes, ARGV[7])
local seen, tenant, user = {}, 0, 0
for _, node in ipairs(nodes) do
  if not seen[node] then
    seen[node] = true
    local counts = redis.call('HMGET', ARGV[1] .. node, ARGV[2], ARGV[3])
    tenant = tenant + (tonumber(counts[1]) or 0)
    user = user + (tonumber(counts[2]) or 0)
  end
end
if tenant >= tonumber(ARGV[4]) then return 1 end
if user >= tonumber(ARGV[5]) then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
return 0
"#;

/// KEYS[1]: this node's counts. ARGV: the fields to take one from.
const RELEASE: &str = r#"
for _, field in ipairs(ARGV) do
  if redis.call('HINCRBY', KEYS[1], field, -1) <= 0 then redis.call('HDEL', KEYS[1], field) end
end
return 0
"#;

/// KEYS[1]: the live nodes. ARGV: the prefix of every node's counts, the tenant field,
/// how old a heartbeat may be (ms).
const COUNT: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local total = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[3]), '+inf')) do
  total = total + (tonumber(redis.call('HGET', ARGV[1] .. node, ARGV[2])) or 0)
end
return total
"#;

/// KEYS[1]: the live nodes. ARGV: the prefix of every node's counts, how old a heartbeat
/// may be (ms), this node's id (left out of the sums), then one user field per user.
/// Returns each user's streams on the other nodes.
const USERS: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local totals = {}
for i = 4, #ARGV do totals[i - 3] = 0 end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')) do
  if node ~= ARGV[3] and #ARGV >= 4 then
    local counts = redis.call('HMGET', ARGV[1] .. node, unpack(ARGV, 4))
    for i, count in ipairs(counts) do totals[i] = totals[i] + (tonumber(count) or 0) end
  end
end
return totals
"#;

fn fields(tenant_id: i64, user: &str) -> [String; 2] {
    [format!("t:{tenant_id}"), format!("u:{tenant_id}:{user}")]
}

pub struct SharedStreams {
    link: RedisLink,
    mirror: Arc<StreamMirror>,
    reserve: redis::Script,
    count: redis::Script,
    users: redis::Script,
    releases: mpsc::UnboundedSender<[String; 2]>,
}

impl SharedStreams {
    pub fn new(link: RedisLink, mirror: Arc<StreamMirror>) -> SharedStreams {
        let (releases, pending) = mpsc::unbounded_channel();
        tokio::spawn(send_releases(link.clone(), pending));
        SharedStreams {
            link,
            mirror,
            reserve: redis::Script::new(RESERVE),
            count: redis::Script::new(COUNT),
            users: redis::Script::new(USERS),
            releases,
        }
    }

    /// The verdict of the deployment's counts, or `None` when Redis does not give one.
    async fn reserve_shared(&self, fields: &[String; 2], caps: StreamCaps) -> Option<i64> {
        let keys = self.link.keys();
        let mut invocation = self.reserve.key(keys.nodes());
        invocation
            .key(keys.own_streams())
            .arg(keys.streams_prefix())
            .arg(&fields[0])
            .arg(&fields[1])
            .arg(caps.per_tenant)
            .arg(caps.per_user)
            .arg(NODE_EXPIRY.as_millis() as u64)
            .arg(keys.node());
        self.link.run(&invocation).await
    }
}

impl StreamLedger for SharedStreams {
    fn reserve<'a>(
        &'a self,
        id: u64,
        tenant_id: i64,
        user: &'a str,
        caps: StreamCaps,
    ) -> Pending<'a, Result<(), HubError>> {
        Box::pin(async move {
            let fields = fields(tenant_id, user);
            let verdict = match self.reserve_shared(&fields, caps).await {
                Some(verdict) => verdict,
                // Without Redis: this node's share of the tenant, the user's cap here.
                None => {
                    let share = (caps.per_tenant as u64 / self.link.nodes()).max(1);
                    if self.mirror.count(&fields[0]) >= share {
                        1
                    } else if self.mirror.count(&fields[1]) >= caps.per_user as u64 {
                        2
                    } else {
                        0
                    }
                }
            };
            match verdict {
                0 => {
                    self.mirror.add(id, fields);
                    Ok(())
                }
                1 => Err(HubError::TooManyForTenant),
                _ => Err(HubError::TooManyForUser),
            }
        })
    }

    fn release(&self, id: u64) {
        if let Some(fields) = self.mirror.remove(id) {
            let _ = self.releases.send(fields);
        }
    }

    fn open_streams(&self, tenant_id: i64) -> Pending<'_, Option<u64>> {
        Box::pin(async move {
            let keys = self.link.keys();
            let mut invocation = self.count.key(keys.nodes());
            invocation
                .arg(keys.streams_prefix())
                .arg(format!("t:{tenant_id}"))
                .arg(NODE_EXPIRY.as_millis() as u64);
            self.link.run(&invocation).await
        })
    }

    fn user_streams_elsewhere<'a>(
        &'a self,
        tenant_id: i64,
        users: &'a [String],
    ) -> Pending<'a, Option<Vec<u64>>> {
        Box::pin(async move {
            let keys = self.link.keys();
            let mut invocation = self.users.key(keys.nodes());
            invocation
                .arg(keys.streams_prefix())
                .arg(NODE_EXPIRY.as_millis() as u64)
                .arg(keys.node());
            for user in users {
                invocation.arg(format!("u:{tenant_id}:{user}"));
            }
            self.link.run(&invocation).await
        })
    }
}

/// Takes ended streams off this node's counts in Redis. One that cannot be sent is left to
/// the next rewrite of the counts (see `redis`).
async fn send_releases(link: RedisLink, mut pending: mpsc::UnboundedReceiver<[String; 2]>) {
    let script = redis::Script::new(RELEASE);
    while let Some(fields) = pending.recv().await {
        let mut invocation = script.key(link.keys().own_streams());
        invocation.arg(&fields[0]).arg(&fields[1]);
        let _: Option<i64> = link.run(&invocation).await;
    }
}
