//! What each tenant does on this node: counted here as it happens, added to the tenant's
//! usage rows in the database once a second (`flush`), and shown per tenant in `/metrics`.
//!
//! Published events are counted by the log writer inside the commit that stores them, so
//! they are exact; publishes refused by the rate limit and events delivered to streams are
//! counted here and reach the database within a second (a node killed outright loses at
//! most its last second of them).
//!
//! `/metrics` labels the first `max_labels` tenants seen by their slug and sums the rest
//! under `tenant="other"`, so a deployment with a hundred thousand tenants does not give
//! its Prometheus a hundred thousand series per counter.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::hub::TenantCounts;
use crate::store::usage::UsageCounts;
use crate::store::{Store, StoreError};

/// The label of the tenants beyond `max_labels`.
const OTHER: &str = "other";

#[derive(Debug, Default, Clone)]
struct TenantMeter {
    slug: Option<String>,
    /// Since this node started, for `/metrics`.
    total: UsageCounts,
    /// Not yet added to the database.
    pending: UsageCounts,
}

pub struct UsageMeter {
    tenants: Mutex<HashMap<i64, TenantMeter>>,
    max_labels: usize,
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

    /// `events` of `slug` committed (already counted in the database by the writer).
    pub fn published(&self, tenant_id: i64, slug: &str, events: u64) {
        self.named(tenant_id, slug, |meter| {
            meter.total.published += events as i64
        });
    }

    /// A publish of `slug` refused by its rate limit.
    pub fn rate_limited(&self, tenant_id: i64, slug: &str) {
        self.named(tenant_id, slug, |meter| {
            meter.total.rate_limited += 1;
            meter.pending.rate_limited += 1;
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
        }
    }

    /// What this node has not yet added to the database, for one tenant.
    #[cfg(test)]
    fn pending(&self, tenant_id: i64) -> UsageCounts {
        self.with(tenant_id, |meter| meter.pending)
    }

    /// Adds what is pending — with the shards' latest deliveries, `delivered` — to the
    /// usage rows of `day`; on failure it stays pending.
    pub async fn flush(
        &self,
        store: &Store,
        delivered: &TenantCounts,
        day: i64,
    ) -> Result<(), StoreError> {
        self.delivered(delivered);
        let pending: Vec<(i64, UsageCounts)> = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            tenants
                .iter_mut()
                .filter(|(_, meter)| !meter.pending.is_empty())
                .map(|(id, meter)| (*id, std::mem::take(&mut meter.pending)))
                .collect()
        };
        let written = store.add_usage(day, &pending).await;
        if written.is_err() {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, counts) in pending {
                let meter = tenants.entry(id).or_default();
                meter.pending.rate_limited += counts.rate_limited;
                meter.pending.delivered += counts.delivered;
            }
        }
        written
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
