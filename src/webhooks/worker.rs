//! The node's outbox workers: claim what is due, attempt it, record the outcome.
//!
//! One loop per node claims due messages (woken when this node writes one, else every
//! `poll`) and starts an attempt for each, at most `workers` at once and at most
//! `per_endpoint` for one endpoint: a slow or dead endpoint holds its own few slots and
//! nothing else — not publishing, not streams, not another endpoint's messages. Claims
//! are leases a little longer than an attempt may last, so a node that dies mid-attempt
//! leaves its messages to be claimed again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::WebhookStats;
use super::schedule::RetrySchedule;
use super::sender::{Sender, Verdict};
use crate::domain::now_ms;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::store::webhooks::{Claimed, Next};

/// How the workers run (from `[webhooks]`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub workers: usize,
    pub per_endpoint: usize,
    pub poll: Duration,
    /// How long a claim holds: an attempt's timeout and some.
    pub lease: Duration,
    pub disable_after: Duration,
    pub schedule: RetrySchedule,
}

/// Attempts in flight on this node, per endpoint.
#[derive(Default)]
struct InFlight {
    total: usize,
    per_endpoint: HashMap<String, usize>,
}

pub(super) struct Worker {
    pub store: Store,
    pub sender: Arc<Sender>,
    pub settings: WorkerSettings,
    pub wake: Arc<Notify>,
    pub stats: Arc<WebhookStats>,
}

impl Worker {
    pub(super) async fn run(self, shutdown: Shutdown) {
        let worker = Arc::new(self);
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = &mut stopping => return,
                _ = worker.wake.notified() => {}
                _ = tokio::time::sleep(worker.settings.poll) => {}
            }
            worker.claim_and_start(&in_flight).await;
        }
    }

    /// Claims due messages while there are free slots, and starts an attempt of each.
    async fn claim_and_start(self: &Arc<Self>, in_flight: &Arc<Mutex<InFlight>>) {
        loop {
            let (free, busy) = {
                let flight = lock(in_flight);
                let busy: Vec<String> = flight
                    .per_endpoint
                    .iter()
                    .filter(|(_, n)| **n >= self.settings.per_endpoint)
                    .map(|(id, _)| id.clone())
                    .collect();
                (self.settings.workers.saturating_sub(flight.total), busy)
            };
            if free == 0 {
                return;
            }
            let lease_until = now_ms() + self.settings.lease.as_millis() as i64;
            let claimed = match self
                .store
                .claim_due_webhooks(free, lease_until, &busy)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "webhooks: cannot claim due messages");
                    return;
                }
            };
            let got = claimed.len();
            let mut extra = Vec::new();
            for message in claimed {
                let started = {
                    let mut flight = lock(in_flight);
                    let count = flight
                        .per_endpoint
                        .entry(message.endpoint.id.clone())
                        .or_default();
                    if *count >= self.settings.per_endpoint {
                        false
                    } else {
                        *count += 1;
                        flight.total += 1;
                        true
                    }
                };
                if !started {
                    extra.push(message.id);
                    continue;
                }
                let (worker, in_flight) = (self.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let endpoint = message.endpoint.id.clone();
                    worker.attempt(message).await;
                    {
                        let mut flight = lock(&in_flight);
                        flight.total -= 1;
                        if let Some(count) = flight.per_endpoint.get_mut(&endpoint) {
                            *count -= 1;
                            if *count == 0 {
                                flight.per_endpoint.remove(&endpoint);
                            }
                        }
                    }
                    worker.wake.notify_one();
                });
            }
            if !extra.is_empty()
                && let Err(error) = self.store.release_webhooks(&extra).await
            {
                tracing::warn!(%error, "webhooks: cannot give back claims; their leases will run out");
            }
            if got < free || !extra.is_empty() {
                return;
            }
        }
    }

    /// A retry due before the next poll wakes the loop itself, so short schedules hold.
    fn wake_at(&self, at_ms: i64) {
        let wait = Duration::from_millis(u64::try_from(at_ms - now_ms()).unwrap_or(0));
        if wait >= self.settings.poll {
            return;
        }
        let wake = self.wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            wake.notify_one();
        });
    }

    async fn attempt(&self, message: Claimed) {
        let (attempt, verdict) = self.sender.attempt(&message).await;
        let attempts = message.attempts as usize + 1;
        let next = match verdict {
            Verdict::Delivered => Next::Delivered,
            Verdict::Gone => Next::Gone,
            Verdict::Failed { retry_after } => self
                .settings
                .schedule
                .next(attempts, retry_after, now_ms())
                .map_or(Next::Failed, Next::RetryAt),
        };
        self.stats
            .attempted(&message.kind, next, attempt.duration_ms);
        if let Next::RetryAt(at) = next {
            self.wake_at(at);
        }
        if next != Next::Delivered {
            tracing::info!(
                message = %message.id,
                endpoint = %message.endpoint.id,
                status = attempt.status_code,
                error = attempt.error.as_deref().unwrap_or(""),
                attempts,
                "webhook attempt failed"
            );
        }
        let disable_after = self.settings.disable_after.as_millis() as i64;
        match self
            .store
            .finish_webhook_attempt(&message, attempt, next, disable_after)
            .await
        {
            Ok(true) => {
                self.stats
                    .endpoints_disabled
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(endpoint = %message.endpoint.id, "webhook endpoint disabled");
            }
            Ok(false) => {}
            // The lease runs out and the message is attempted again: at least once.
            Err(error) => {
                tracing::error!(%error, message = %message.id, "webhooks: cannot record an attempt")
            }
        }
    }
}

fn lock(in_flight: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    in_flight
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
