//! Per-tenant publish budgets: may this tenant store `n` more events now, and if not, when?
//!
//! `PublishBudget` is the contract the publish route asks. A single node answers from its
//! own token buckets (`local`, GCRA by the `governor` crate); several nodes share one
//! bucket per tenant in Redis (`rates`, GCRA in one script call), so the limit is the
//! deployment's — and a node that cannot reach Redis answers from its own share of the
//! limit until it can, rather than stop publishing. Stream caps are the deployment's the
//! same way (`streams`, the hub's `StreamLedger`); both reach Redis through one `redis`
//! link per node. Usage counts live in `usage`.

pub mod local;
pub mod mirror;
pub mod rates;
pub mod redis;
pub mod streams;
pub mod usage;

use std::time::Duration;

use crate::domain::limits::EffectiveLimits;

/// A tenant's token bucket: `per_sec` events a second, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    pub per_sec: u64,
    pub burst: u64,
}

impl Rate {
    pub fn of(limits: &EffectiveLimits) -> Rate {
        Rate {
            per_sec: limits.publish_per_sec.max(1),
            burst: limits.publish_burst.max(1),
        }
    }

    /// This rate split `ways` ways (a node's share of the deployment's), never below one
    /// event.
    pub fn share(self, ways: u64) -> Rate {
        let ways = ways.max(1);
        Rate {
            per_sec: (self.per_sec / ways).max(1),
            burst: (self.burst / ways).max(1),
        }
    }

    /// How long an empty bucket takes to fill.
    pub fn full_after(self) -> Duration {
        Duration::from_secs_f64(self.burst as f64 / self.per_sec as f64)
    }
}

/// What the budget says about `n` events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Taken from the bucket; `remaining` more could go at once, and the bucket is full
    /// again after `full_in`.
    Admitted { remaining: u64, full_in: Duration },
    /// Not now: nothing taken; `n` would fit after `retry_after`.
    Refused { retry_after: Duration },
    /// Never: `n` is more than the bucket holds.
    TooLarge,
}

/// The publish route's budget: one node's, or the deployment's.
pub enum PublishBudget {
    Local(local::LocalBuckets),
    Shared(rates::SharedBuckets),
}

impl PublishBudget {
    /// Takes `n` events from `tenant_id`'s bucket of `rate`, or says when they would fit.
    pub async fn admit(&self, tenant_id: i64, rate: Rate, n: u64) -> Admission {
        match self {
            PublishBudget::Local(buckets) => buckets.admit(tenant_id, rate, n),
            PublishBudget::Shared(buckets) => buckets.admit(tenant_id, rate, n).await,
        }
    }

    /// Forgets a removed tenant's bucket on this node.
    pub fn forget(&self, tenant_id: i64) {
        match self {
            PublishBudget::Local(buckets) => buckets.forget(tenant_id),
            PublishBudget::Shared(buckets) => buckets.forget(tenant_id),
        }
    }

    /// Whether the deployment's buckets are out of reach and this node uses its share.
    pub fn degraded(&self) -> bool {
        match self {
            PublishBudget::Local(_) => false,
            PublishBudget::Shared(buckets) => !buckets.connected(),
        }
    }
}
