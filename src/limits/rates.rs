//! The deployment's token buckets, one per tenant, in Redis: every node takes from the same
//! bucket, so a tenant's limit holds however many nodes its publishes reach.
//!
//! One script call per publish runs the GCRA in Redis on Redis's own clock: the bucket is a
//! "theoretical arrival time" (TAT) per tenant, `n` events fit when TAT + n·interval − now
//! ≤ burst·interval, and a refused call changes nothing. When Redis does not answer in
//! time, or is away, the node admits from its own share of the limit (`limit / nodes`, by
//! local buckets) until it answers again.

use std::time::Duration;

use super::local::LocalBuckets;
use super::redis::RedisLink;
use super::{Admission, Rate};

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
    link: RedisLink,
    script: redis::Script,
    fallback: LocalBuckets,
}

impl SharedBuckets {
    pub fn new(link: RedisLink) -> SharedBuckets {
        SharedBuckets {
            link,
            script: redis::Script::new(GCRA),
            fallback: LocalBuckets::default(),
        }
    }

    /// Forgets a removed tenant's share bucket (its shared one expires in Redis by itself).
    pub fn forget(&self, tenant_id: i64) {
        self.fallback.forget(tenant_id);
    }

    pub fn connected(&self) -> bool {
        self.link.connected()
    }

    pub async fn admit(&self, tenant_id: i64, rate: Rate, n: u64) -> Admission {
        if n > rate.burst {
            return Admission::TooLarge;
        }
        let interval_us = 1_000_000.0 / rate.per_sec as f64;
        let mut invocation = self.script.key(self.link.keys().rate(tenant_id));
        invocation.arg(interval_us).arg(rate.burst).arg(n);
        if let Some((admitted, remaining, micros)) =
            self.link.run::<(u8, i64, i64)>(&invocation).await
        {
            let after = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
            return match admitted {
                1 => Admission::Admitted {
                    remaining: u64::try_from(remaining).unwrap_or(0),
                    full_in: after,
                },
                _ => Admission::Refused { retry_after: after },
            };
        }
        let share = rate.share(self.link.nodes());
        self.fallback.admit(tenant_id, share, n)
    }
}
