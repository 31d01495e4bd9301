//! The node's outbox workers: claim what is due, attempt it, record the outcome.
//!
//! One loop per node claims due messages and starts an attempt for each, at most `workers`
//! at once and at most `per_endpoint` for one endpoint: a slow or dead endpoint holds its
//! own few slots and nothing else — not publishing, not streams, not another endpoint's
//! messages. The loop looks for endpoints with messages due when this node writes one and
//! every `poll`; when an attempt ends it claims that endpoint's next one at once, so one
//! endpoint with a backlog is served as fast as it answers. Claims are leases a little
//! longer than an attempt may last, so a node that dies mid-attempt leaves its messages to
//! be claimed again.

use std::collections::{HashMap, HashSet, VecDeque};
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

/// Attempts in flight on this node, per endpoint, and the endpoints to claim for next.
#[derive(Default)]
struct InFlight {
    total: usize,
    per_endpoint: HashMap<String, usize>,
    /// Endpoints that may have messages due, served in turn so that one with a backlog
    /// does not keep the node's free slots from the others: one whose attempt just ended,
    /// and those a look into the outbox found.
    turns: VecDeque<String>,
    queued: HashSet<String>,
}

impl InFlight {
    fn queue(&mut self, endpoint: String) {
        if self.queued.insert(endpoint.clone()) {
            self.turns.push_back(endpoint);
        }
    }

    /// The next endpoint in turn that has free slots, and how many messages it may take.
    fn next_turn(&mut self, settings: &WorkerSettings) -> Option<(String, usize)> {
        let free = settings.workers.saturating_sub(self.total);
        if free == 0 {
            return None;
        }
        while let Some(endpoint) = self.turns.pop_front() {
            self.queued.remove(&endpoint);
            let busy = self.per_endpoint.get(&endpoint).copied().unwrap_or(0);
            // A busy endpoint is queued again when one of its attempts ends.
            let slots = settings.per_endpoint.saturating_sub(busy).min(free);
            if slots > 0 {
                return Some((endpoint, slots));
            }
        }
        None
    }

    /// Endpoints with every slot taken.
    fn busy(&self, settings: &WorkerSettings) -> Vec<String> {
        self.per_endpoint
            .iter()
            .filter(|(_, n)| **n >= settings.per_endpoint)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

pub(super) struct Worker {
    pub store: Store,
    pub sender: Arc<Sender>,
    pub settings: WorkerSettings,
    /// This node wrote messages, or a retry is due: look for endpoints with work.
    pub wake: Arc<Notify>,
    /// An attempt ended: its endpoint has a free slot.
    pub ended: Notify,
    pub stats: Arc<WebhookStats>,
}

impl Worker {
    pub(super) async fn run(self, shutdown: Shutdown) {
        let worker = Arc::new(self);
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        let mut poll = tokio::time::interval(worker.settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let look = tokio::select! {
                _ = &mut stopping => return,
                _ = worker.wake.notified() => true,
                _ = poll.tick() => true,
                _ = worker.ended.notified() => false,
            };
            worker.claim_and_start(&in_flight, look).await;
        }
    }

    /// Claims, endpoint by endpoint in turn, as many due messages as each has free slots
    /// (so nothing claimed is given back), and starts an attempt of each. With `look`,
    /// first asks the outbox which endpoints have messages due.
    async fn claim_and_start(self: &Arc<Self>, in_flight: &Arc<Mutex<InFlight>>, look: bool) {
        if look {
            let (free, busy) = {
                let flight = lock(in_flight);
                let free = self.settings.workers.saturating_sub(flight.total);
                (free, flight.busy(&self.settings))
            };
            if free > 0 {
                match self.store.endpoints_with_due_webhooks(free, &busy).await {
                    Ok(found) => {
                        let mut flight = lock(in_flight);
                        found
                            .into_iter()
                            .for_each(|endpoint| flight.queue(endpoint));
                    }
                    Err(error) => tracing::warn!(%error, "webhooks: cannot look for due messages"),
                }
            }
        }
        loop {
            let Some((endpoint, slots)) = lock(in_flight).next_turn(&self.settings) else {
                return;
            };
            let lease_until = now_ms() + self.settings.lease.as_millis() as i64;
            let claimed = match self
                .store
                .claim_due_webhooks(&endpoint, slots, lease_until)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "webhooks: cannot claim due messages");
                    return;
                }
            };
            if !claimed.is_empty() {
                let mut flight = lock(in_flight);
                flight.total += claimed.len();
                *flight.per_endpoint.entry(endpoint).or_default() += claimed.len();
            }
            for message in claimed {
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
                        flight.queue(endpoint);
                    }
                    worker.ended.notify_one();
                });
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
