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
use crate::tail::{Notice, Tail};

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

/// An endpoint's turn to start attempts.
struct Turn {
    endpoint: String,
    /// Messages held for it, to start now.
    ready: Vec<Claimed>,
    /// Messages held for it too long to start within their lease: to give back.
    lapsed: Vec<String>,
    /// Free slots the held messages did not fill, and how many more to claim to hold.
    want: usize,
    ahead: usize,
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

    /// The next endpoint in turn that has free slots: the messages held for it that can
    /// still start (up to its free slots), those that no longer can, and how many to claim.
    fn next_turn(&mut self, settings: &WorkerSettings, now: i64) -> Option<Turn> {
        let free = settings.workers.saturating_sub(self.total);
        if free == 0 {
            return None;
        }
        while let Some(endpoint) = self.turns.pop_front() {
            self.queued.remove(&endpoint);
            let busy = self.per_endpoint.get(&endpoint).copied().unwrap_or(0);
            // A busy endpoint is queued again when one of its attempts ends.
            let slots = settings.per_endpoint.saturating_sub(busy).min(free);
            if slots == 0 {
                continue;
            }
            let (mut ready, mut lapsed) = (Vec::new(), Vec::new());
            if let Some(held) = self.held.get_mut(&endpoint) {
                while ready.len() < slots
                    && let Some(next) = held.pop_front()
                {
                    match next.start_by >= now {
                        true => ready.push(next.message),
                        false => lapsed.push(next.message.id),
                    }
                }
                if held.is_empty() {
                    self.held.remove(&endpoint);
                }
            }
            let want = slots - ready.len();
            let ahead = match self.fast.contains(&endpoint) {
                true => want * HELD_PER_SLOT,
                false => 0,
            };
            return Some(Turn {
                endpoint,
                ready,
                lapsed,
                want,
                ahead,
            });
        }
        None
    }

    /// Keeps what a claim took beyond the endpoint's free slots; a claim that got fewer
    /// than it asked for drained the endpoint's backlog, which ends holding for it.
    fn hold(&mut self, endpoint: &str, extra: Vec<Held>, drained: bool) {
        if drained {
            self.fast.remove(endpoint);
        }
        if !extra.is_empty() {
            self.held
                .entry(endpoint.to_owned())
                .or_default()
                .extend(extra);
        }
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
    /// Failed attempts are told to whoever watches the tenant.
    pub tail: Arc<Tail>,
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
            let Some(turn) = lock(in_flight).next_turn(&self.settings, now_ms()) else {
                return;
            };
            let Turn {
                endpoint,
                mut ready,
                lapsed,
                want,
                ahead,
            } = turn;
            self.give_back(&lapsed).await;
            if want > 0 {
                match self.claim(&endpoint, want + ahead).await {
                    Ok(mut claimed) => {
                        let drained = claimed.len() < want + ahead;
                        let extra = claimed.split_off(want.min(claimed.len()));
                        ready.extend(claimed.into_iter().map(|held| held.message));
                        lock(in_flight).hold(&endpoint, extra, drained);
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
            self.tail.notice(
                message.endpoint.tenant_id,
                Notice::WebhookFailed {
                    endpoint_id: message.endpoint.id.clone(),
                    message_id: message.id.clone(),
                    message_type: message.kind.clone(),
                    status_code: attempt.status_code,
                    error: attempt.error.clone().unwrap_or_default(),
                },
            );
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
