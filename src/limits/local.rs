//! One node's token buckets, one per tenant, by the `governor` crate (GCRA). A tenant's
//! bucket is made on its first publish and made anew when its rate changes, so a changed
//! limit takes effect with the next publish.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::{Admission, Rate};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

#[derive(Default)]
pub struct LocalBuckets {
    buckets: Mutex<HashMap<i64, (Rate, Arc<Bucket>)>>,
    clock: DefaultClock,
}

impl LocalBuckets {
    pub fn admit(&self, tenant_id: i64, rate: Rate, n: u64) -> Admission {
        let bucket = self.bucket(tenant_id, rate);
        let Some(cells) = u32::try_from(n).ok().and_then(NonZeroU32::new) else {
            return match n {
                0 => Admission::Admitted {
                    remaining: rate.burst,
                    full_in: std::time::Duration::ZERO,
                },
                _ => Admission::TooLarge,
            };
        };
        match bucket.check_n(cells) {
            Err(_) => Admission::TooLarge,
            Ok(Ok(snapshot)) => {
                let remaining = u64::from(snapshot.remaining_burst_capacity());
                let missing = rate.burst.saturating_sub(remaining);
                Admission::Admitted {
                    remaining,
                    full_in: std::time::Duration::from_secs_f64(
                        missing as f64 / rate.per_sec as f64,
                    ),
                }
            }
            Ok(Err(not_until)) => Admission::Refused {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    fn bucket(&self, tenant_id: i64, rate: Rate) -> Arc<Bucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        match buckets.get(&tenant_id) {
            Some((current, bucket)) if *current == rate => bucket.clone(),
            _ => {
                let bucket = Arc::new(new_bucket(rate, &self.clock));
                buckets.insert(tenant_id, (rate, bucket.clone()));
                bucket
            }
        }
    }

    /// Forgets a removed tenant's bucket.
    pub fn forget(&self, tenant_id: i64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.remove(&tenant_id);
    }
}

fn new_bucket(rate: Rate, clock: &DefaultClock) -> Bucket {
    let clamp = |value: u64| NonZeroU32::new(u32::try_from(value).unwrap_or(u32::MAX).max(1));
    let per_sec = clamp(rate.per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = clamp(rate.burst).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct_with_clock(Quota::per_second(per_sec).allow_burst(burst), clock.clone())
        .with_middleware::<StateInformationMiddleware>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_refused_whole_and_a_batch_beyond_the_bucket_never() {
        let buckets = LocalBuckets::default();
        let rate = Rate {
            per_sec: 1,
            burst: 10,
        };
        assert!(matches!(
            buckets.admit(1, rate, 8),
            Admission::Admitted { remaining: 2, .. }
        ));
        // 3 do not fit in the 2 left: none is taken.
        let Admission::Refused { retry_after } = buckets.admit(1, rate, 3) else {
            panic!("refused");
        };
        assert!(
            retry_after > std::time::Duration::from_millis(500),
            "{retry_after:?}"
        );
        assert!(matches!(
            buckets.admit(1, rate, 2),
            Admission::Admitted { remaining: 0, .. }
        ));
        assert_eq!(buckets.admit(1, rate, 11), Admission::TooLarge);
        // Another tenant has a bucket of its own.
        assert!(matches!(
            buckets.admit(2, rate, 10),
            Admission::Admitted { .. }
        ));
        // A changed rate is a fresh bucket.
        let more = Rate {
            per_sec: 1,
            burst: 20,
        };
        assert!(matches!(
            buckets.admit(1, more, 20),
            Admission::Admitted { .. }
        ));
    }
}
