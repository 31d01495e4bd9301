//! The node's outbox workers: claim what is due, attempt it, record the outcome.
//!
//! One loop per node claims due messages and starts an attempt for each, at most `workers`
//! at once and at most `per_endpoint` for one endpoint: a slow or dead endpoint holds its
//! own few slots and nothing else — not publishing, not streams, not another endpoint's
//! messages. The loop looks for endpoints with messages due when this node writes one and
//! every `poll`; when an attempt ends it gives that endpoint's slot its next message at
//! once, so an endpoint with a backlog is served as fast as it answers.
//!
//! What costs is the database, not the requests: so a claim for an endpoint that answers
//! fast takes some messages more than it has free slots and holds them here for its next
//! turns (given back as soon as it answers slowly, fails or is disabled), and a recorder
//! writes the outcomes of the attempts that ended meanwhile in one transaction. Claims
//! are leases a little longer than an attempt may last: a held message is started only
//! while its lease outlasts an attempt (else given back), and a node that dies mid-attempt
//! leaves its messages to be claimed again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::WebhookStats;
use super::schedule::RetrySchedule;
use super::sender::{Sender, Verdict};
use crate::domain::now_ms;
use crate::shutdown::Shutdown;
use crate::store::webhooks::{Claimed, Finished, Next};
use crate::store::{Store, StoreError};

/// How many messages beyond its free slots a claim takes of a fast endpoint, per slot.
const HELD_PER_SLOT: usize = 8;
/// An endpoint is fast while its last attempt succeeded within this: only then are
/// messages held for it (a slow one's would wait out their leases).
const FAST_ATTEMPT_MS: i64 = 100;
/// The most outcomes one transaction records.
const RECORD_BATCH: usize = 256;

/// How the workers run (from `[webhooks]`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub workers: usize,
    pub per_endpoint: usize,
    pub poll: Duration,
    /// The longest an attempt may take.
    pub timeout: Duration,
    /// How long a claim holds: an attempt's timeout and some.
    pub lease: Duration,
    pub disable_after: Duration,
    pub schedule: RetrySchedule,
}

/// A claimed message waiting for a slot of its endpoint.
struct Held {
    message: Claimed,
    /// The last moment an attempt can start and still end within the lease.
    start_by: i64,
}

/// Attempts in flight on this node, per endpoint; the messages held for them; and the
/// endpoints to serve next.
#[derive(Default)]
struct InFlight {
    total: usize,
    per_endpoint: HashMap<String, usize>,
    held: HashMap<String, VecDeque<Held>>,
    /// Endpoints with a backlog whose last attempt was fast.
    fast: HashSet<String>,
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

    /// The next endpoint in turn that has free slots, and how many.
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

    /// Up to `slots` of the messages held for `endpoint` that can still start, and the ids
    /// of those that no longer can.
    fn take_held(&mut self, endpoint: &str, slots: usize, now: i64) -> (Vec<Claimed>, Vec<String>) {
        let (mut ready, mut lapsed) = (Vec::new(), Vec::new());
        let Some(held) = self.held.get_mut(endpoint) else {
            return (ready, lapsed);
        };
        while ready.len() < slots
            && let Some(next) = held.pop_front()
        {
            match next.start_by >= now {
                true => ready.push(next.message),
                false => lapsed.push(next.message.id),
            }
        }
        if held.is_empty() {
            self.held.remove(endpoint);
        }
        (ready, lapsed)
    }

    fn started(&mut self, endpoint: &str, count: usize) {
        if count > 0 {
            self.total += count;
            *self.per_endpoint.entry(endpoint.to_owned()).or_default() += count;
        }
    }

    /// An attempt of `endpoint` is over and recorded: its slot is free. One that was not
    /// fast ends the holding of messages for the endpoint: the ids of those it held.
    fn ended(&mut self, endpoint: &str, fast: bool) -> Vec<String> {
        self.total -= 1;
        if let Some(count) = self.per_endpoint.get_mut(endpoint) {
            *count -= 1;
            if *count == 0 {
                self.per_endpoint.remove(endpoint);
            }
        }
        self.queue(endpoint.to_owned());
        match fast {
            true => {
                self.fast.insert(endpoint.to_owned());
                Vec::new()
            }
            false => self.forget(endpoint),
        }
    }

    /// Holds nothing more for `endpoint`: the ids of what it held.
    fn forget(&mut self, endpoint: &str) -> Vec<String> {
        self.fast.remove(endpoint);
        self.held
            .remove(endpoint)
            .into_iter()
            .flatten()
            .map(|held| held.message.id)
            .collect()
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
    /// Attempts ended and were recorded: their endpoints have free slots.
    pub ended: Notify,
    pub stats: Arc<WebhookStats>,
}

impl Worker {
    pub(super) async fn run(self, shutdown: Shutdown) {
        let worker = Arc::new(self);
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        let (finished, outcomes) = mpsc::unbounded_channel();
        tokio::spawn(worker.clone().record(outcomes, in_flight.clone()));
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        let mut poll = tokio::time::interval(worker.settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let look = tokio::select! {
                _ = &mut stopping => break,
                _ = worker.wake.notified() => true,
                _ = poll.tick() => true,
                _ = worker.ended.notified() => false,
            };
            worker.claim_and_start(&in_flight, &finished, look).await;
        }
        let held: Vec<String> = std::mem::take(&mut lock(&in_flight).held)
            .into_values()
            .flatten()
            .map(|held| held.message.id)
            .collect();
        worker.give_back(&held).await;
    }

    /// Serves endpoints in turn while there are free slots: each gets as many messages as
    /// it has free slots, from those held for it or else from a claim that takes some more
    /// to hold. With `look`, first asks the outbox which endpoints have messages due.
    async fn claim_and_start(
        self: &Arc<Self>,
        in_flight: &Arc<Mutex<InFlight>>,
        finished: &mpsc::UnboundedSender<Finished>,
        look: bool,
    ) {
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
            let (mut ready, lapsed) = lock(in_flight).take_held(&endpoint, slots, now_ms());
            self.give_back(&lapsed).await;
            if ready.len() < slots {
                let want = slots - ready.len();
                let ahead = match lock(in_flight).fast.contains(&endpoint) {
                    true => want * HELD_PER_SLOT,
                    false => 0,
                };
                match self.claim(&endpoint, want + ahead).await {
                    Ok(claimed) => {
                        let drained = claimed.len() < want + ahead;
                        let mut claimed = claimed.into_iter();
                        ready.extend(claimed.by_ref().take(want).map(|held| held.message));
                        let mut flight = lock(in_flight);
                        if drained {
                            flight.fast.remove(&endpoint);
                        }
                        let held = flight.held.entry(endpoint.clone()).or_default();
                        held.extend(claimed);
                        if held.is_empty() {
                            flight.held.remove(&endpoint);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "webhooks: cannot claim due messages");
                        return;
                    }
                }
            }
            lock(in_flight).started(&endpoint, ready.len());
            for message in ready {
                let (worker, finished) = (self.clone(), finished.clone());
                tokio::spawn(async move {
                    let outcome = worker.attempt(message).await;
                    // The recorder outlives every sender of outcomes.
                    let _ = finished.send(outcome);
                });
            }
        }
    }

    /// Claims up to `count` of the endpoint's due messages, to be started at once or held.
    async fn claim(&self, endpoint: &str, count: usize) -> Result<Vec<Held>, StoreError> {
        let lease_until = now_ms() + self.settings.lease.as_millis() as i64;
        let start_by = lease_until - self.settings.timeout.as_millis() as i64;
        let claimed = self
            .store
            .claim_due_webhooks(endpoint, count, lease_until)
            .await?;
        Ok(claimed
            .into_iter()
            .map(|message| Held { message, start_by })
            .collect())
    }

    async fn give_back(&self, ids: &[String]) {
        if let Err(error) = self.store.release_webhooks(ids).await {
            tracing::warn!(%error, "webhooks: cannot give back claims; their leases will run out");
        }
    }

    /// Records the outcomes of ended attempts, those that ended together in one
    /// transaction, and frees their slots.
    async fn record(
        self: Arc<Self>,
        mut outcomes: mpsc::UnboundedReceiver<Finished>,
        in_flight: Arc<Mutex<InFlight>>,
    ) {
        let disable_after = self.settings.disable_after.as_millis() as i64;
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            let disabled = match self
                .store
                .finish_webhook_attempts(&batch, disable_after)
                .await
            {
                Ok(disabled) => disabled,
                // The leases run out and the messages are attempted again: at least once.
                Err(error) => {
                    tracing::error!(%error, count = batch.len(), "webhooks: cannot record attempts");
                    Vec::new()
                }
            };
            let give_back: Vec<String> = {
                let mut flight = lock(&in_flight);
                let mut give_back = Vec::new();
                for finished in &batch {
                    let fast = finished.next == Next::Delivered
                        && finished.attempt.duration_ms <= FAST_ATTEMPT_MS;
                    give_back.extend(flight.ended(&finished.message.endpoint.id, fast));
                }
                for endpoint in &disabled {
                    give_back.extend(flight.forget(endpoint));
                }
                give_back
            };
            for endpoint in disabled {
                self.stats
                    .endpoints_disabled
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%endpoint, "webhook endpoint disabled");
            }
            self.give_back(&give_back).await;
            self.ended.notify_one();
            batch.clear();
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

    /// Attempts `message` once: the outcome, to record.
    async fn attempt(&self, message: Claimed) -> Finished {
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
        Finished {
            message,
            attempt,
            next,
        }
    }
}

fn lock(in_flight: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    in_flight
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
