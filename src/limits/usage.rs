//! What each tenant does on this node: counted here as it happens, added to the tenant's
//! daily and hourly usage rows in the database once a second (`flush`), and shown per
//! tenant in `/metrics`.
//!
//! In the daily rows, published events (and fallbacks fired) are counted inside the commit
//! that stores them, so they are exact; publishes refused by the rate limit and events
//! delivered to streams are counted here and reach the database within a second (a node
//! killed outright loses at most its last second of them). The hourly rows, for charts,
//! take everything from here, with each tenant's streams open sampled at every flush.
//!
//! `/metrics` labels the first `max_labels` tenants seen by their slug and sums the rest
//! under `tenant="other"`, so a deployment with a hundred thousand tenants does not give
//! its Prometheus a hundred thousand series per counter.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::hub::{Hub, TenantCounts};
use crate::store::hourly_usage::{HourCounts, hour_of};
use crate::store::usage::{UsageCounts, day_of};
use crate::store::{Store, StoreError};

/// The label of the tenants beyond `max_labels`.
const OTHER: &str = "other";

#[derive(Debug, Default, Clone)]
struct TenantMeter {
    slug: Option<String>,
    /// Since this node started, for `/metrics`.
    total: UsageCounts,
    /// Not yet added to the daily rows.
    pending: UsageCounts,
    /// Not yet added to the hourly rows.
    hour: HourCounts,
    peak: StreamPeak,
}

/// The most streams of a tenant open at once on this node in an hour, and how much of it
/// the hourly row was given (each node adds its own peak).
#[derive(Debug, Default, Clone, Copy)]
struct StreamPeak {
    hour: i64,
    most: i64,
    added: i64,
}

impl StreamPeak {
    /// Takes in `open` streams now; answers what the hour's row is to be given.
    fn sample(&mut self, hour: i64, open: i64) -> i64 {
        if self.hour != hour {
            *self = StreamPeak {
                hour,
                most: 0,
                added: 0,
            };
        }
        self.most = self.most.max(open);
        let grew = self.most - self.added;
        self.added = self.most;
        grew
    }
}

pub struct UsageMeter {
    tenants: Mutex<HashMap<i64, TenantMeter>>,
    max_labels: usize,
    /// One flush at a time: a reader that flushes first (the usage routes) then finds in
    /// the rows what another flush had taken but not yet written.
    flushing: tokio::sync::Mutex<()>,
}

/// One tenant's line in `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLine {
    pub label: String,
    pub counts: UsageCounts,
    pub streams_open: u64,
}

impl UsageMeter {
    pub fn new(max_labels: usize) -> UsageMeter {
        UsageMeter {
            tenants: Mutex::new(HashMap::new()),
            max_labels,
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn with<R>(&self, tenant_id: i64, change: impl FnOnce(&mut TenantMeter) -> R) -> R {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        change(tenants.entry(tenant_id).or_default())
    }

    /// `slug`'s meter (named for `/metrics` as it is touched).
    fn named<R>(
        &self,
        tenant_id: i64,
        slug: &str,
        change: impl FnOnce(&mut TenantMeter) -> R,
    ) -> R {
        self.with(tenant_id, |meter| {
            if meter.slug.as_deref() != Some(slug) {
                meter.slug = Some(slug.to_owned());
            }
            change(meter)
        })
    }

    /// `events` of `slug` committed (already counted in the daily rows by the writer).
    pub fn published(&self, tenant_id: i64, slug: &str, events: u64) {
        self.named(tenant_id, slug, |meter| {
            meter.total.published += events as i64;
            meter.hour.published += events as i64;
        });
    }

    /// A publish of `slug` refused by its rate limit.
    pub fn rate_limited(&self, tenant_id: i64, slug: &str) {
        self.named(tenant_id, slug, |meter| {
            meter.total.rate_limited += 1;
            meter.pending.rate_limited += 1;
            meter.hour.rate_limited += 1;
        });
    }

    /// Fallbacks of a tenant that fired (already counted in the daily rows).
    pub fn fallbacks_fired(&self, tenant_id: i64, fired: u64) {
        self.with(tenant_id, |meter| {
            meter.total.fallbacks_fired += fired as i64;
            meter.hour.fallbacks_fired += fired as i64;
        });
    }

    /// Events the shards handed to streams since the last call, per tenant.
    pub fn delivered(&self, from: &TenantCounts) {
        let counts = from.take();
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        for (tenant_id, events) in counts {
            let meter = tenants.entry(tenant_id).or_default();
            meter.total.delivered += events as i64;
            meter.pending.delivered += events as i64;
            meter.hour.delivered += events as i64;
        }
    }

    /// What this node has not yet added to the database, for one tenant.
    #[cfg(test)]
    fn pending(&self, tenant_id: i64) -> UsageCounts {
        self.with(tenant_id, |meter| meter.pending)
    }

    /// Adds what is pending — with the hub's latest deliveries and each tenant's streams
    /// open now — to the usage rows of the day and the hour `now` is in; on failure it
    /// stays pending.
    pub async fn flush(&self, store: &Store, hub: &Hub, now: i64) -> Result<(), StoreError> {
        let _turn = self.flushing.lock().await;
        self.delivered(&hub.stats().delivered_to);
        let open = hub.open_streams();
        let hour = hour_of(now);
        let (daily, hourly) = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            for id in open.keys() {
                tenants.entry(*id).or_default();
            }
            let mut daily = Vec::new();
            let mut hourly = Vec::new();
            for (id, meter) in tenants.iter_mut() {
                let streams = open.get(id).copied().unwrap_or(0) as i64;
                meter.hour.streams_open += meter.peak.sample(hour, streams);
                if !meter.pending.is_empty() {
                    daily.push((*id, std::mem::take(&mut meter.pending)));
                }
                if !meter.hour.is_empty() {
                    hourly.push((*id, std::mem::take(&mut meter.hour)));
                }
            }
            (daily, hourly)
        };
        let written = match store.add_usage(day_of(now), &daily).await {
            Ok(()) => store
                .add_hourly_usage(hour, &hourly)
                .await
                .map_err(|e| (e, false)),
            Err(error) => Err((error, true)),
        };
        let Err((error, daily_failed)) = written else {
            return Ok(());
        };
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if daily_failed {
            for (id, counts) in daily {
                let meter = tenants.entry(id).or_default();
                meter.pending.rate_limited += counts.rate_limited;
                meter.pending.delivered += counts.delivered;
            }
        }
        for (id, counts) in hourly {
            tenants.entry(id).or_default().hour.add(&counts);
        }
        Err(error)
    }

    /// Forgets a removed tenant.
    pub fn forget(&self, tenant_id: i64) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.remove(&tenant_id);
    }

    /// One line per named tenant, the first `max_labels` by id (the oldest tenants, so the
    /// set of labels is stable), and one `other` line for the rest; `streams_open` gives each
    /// tenant's open streams on this node.
    pub fn lines(&self, streams_open: &HashMap<i64, usize>) -> Vec<TenantLine> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<i64> = tenants
            .iter()
            .filter(|(_, meter)| meter.slug.is_some())
            .map(|(id, _)| *id)
            .collect();
        ids.extend(streams_open.keys().filter(|id| !tenants.contains_key(id)));
        ids.sort_unstable();
        ids.dedup();
        let mut lines: Vec<TenantLine> = Vec::new();
        let mut other = TenantLine {
            label: OTHER.into(),
            counts: UsageCounts::default(),
            streams_open: 0,
        };
        for id in ids {
            let meter = tenants.get(&id).cloned().unwrap_or_default();
            let streams = streams_open.get(&id).copied().unwrap_or(0) as u64;
            match meter.slug {
                Some(slug) if lines.len() < self.max_labels => lines.push(TenantLine {
                    label: slug,
                    counts: meter.total,
                    streams_open: streams,
                }),
                _ => {
                    other.counts.published += meter.total.published;
                    other.counts.rate_limited += meter.total.rate_limited;
                    other.counts.delivered += meter.total.delivered;
                    other.streams_open += streams;
                }
            }
        }
        if other.counts != UsageCounts::default() || other.streams_open > 0 {
            lines.push(other);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_beyond_the_label_cap_are_summed_as_other() {
        let meter = UsageMeter::new(2);
        for (id, slug) in [(3, "c"), (1, "a"), (2, "b")] {
            meter.published(id, slug, id as u64);
        }
        meter.rate_limited(3, "c");
        let shards = TenantCounts::default();
        shards.add([(1, 10), (3, 30)]);
        meter.delivered(&shards);
        let lines = meter.lines(&HashMap::from([(2, 5), (4, 1)]));
        let labels: Vec<&str> = lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["a", "b", "other"]);
        assert_eq!(lines[0].counts.delivered, 10);
        assert_eq!(lines[1].streams_open, 5);
        let other = &lines[2];
        assert_eq!((other.counts.published, other.counts.rate_limited), (3, 1));
        assert_eq!((other.counts.delivered, other.streams_open), (30, 1));
        assert_eq!(meter.pending(3).rate_limited, 1);
    }
}
