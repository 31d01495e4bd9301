//! Outbound webhooks: the node's side of the outbox the store keeps (`store::webhooks`).
//!
//! A message is written to the database first (in the transaction of what caused it);
//! this module sends it: `worker` claims what is due and runs the attempts, `sender` makes
//! one signed request, `schedule` says when a failed message is due again. `Outbox` is
//! what the rest of Herald holds: it wakes the workers when this node writes a message and
//! keeps the counters `/metrics` shows.

mod schedule;
mod sender;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use schedule::RetrySchedule;
use sender::Sender;
use worker::{Worker, WorkerSettings};

use crate::config::WebhookSettings;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::store::webhooks::Next;
use crate::tail::Tail;

/// How often the count of messages still due is taken for `/metrics`.
const PENDING_EVERY: Duration = Duration::from_secs(10);

/// Per message type, what this node's attempts came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct TypeCounts {
    pub delivered: u64,
    /// Attempts that failed (each retry counts again).
    pub failed_attempts: u64,
    /// Messages that failed for good.
    pub given_up: u64,
}

#[derive(Default)]
pub struct WebhookStats {
    by_type: Mutex<HashMap<String, TypeCounts>>,
    pub attempts: AtomicU64,
    pub attempt_ms_total: AtomicU64,
    pub endpoints_disabled: AtomicU64,
    /// Messages due deployment-wide, per type, as last counted.
    pending: Mutex<Vec<(String, i64)>>,
}

impl WebhookStats {
    fn attempted(&self, kind: &str, next: Next, duration_ms: i64) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.attempt_ms_total
            .fetch_add(u64::try_from(duration_ms).unwrap_or(0), Ordering::Relaxed);
        let mut by_type = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
        let counts = by_type.entry(kind.to_owned()).or_default();
        match next {
            Next::Delivered => counts.delivered += 1,
            Next::RetryAt(_) => counts.failed_attempts += 1,
            Next::Failed | Next::Gone => {
                counts.failed_attempts += 1;
                counts.given_up += 1;
            }
        }
    }

    pub fn by_type(&self) -> Vec<(String, TypeCounts)> {
        let by_type = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
        by_type.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub fn pending(&self) -> Vec<(String, i64)> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The node's handle on its outbox workers.
#[derive(Clone)]
pub struct Outbox {
    wake: Arc<Notify>,
    stats: Arc<WebhookStats>,
}

impl Outbox {
    /// Starts the workers `settings` describe. On SQLite this process is the only node:
    /// claims a killed run left behind are given back first, so their messages are
    /// attempted again at once.
    pub async fn configured(
        settings: &WebhookSettings,
        store: &Store,
        tail: Arc<Tail>,
        shutdown: Shutdown,
    ) -> anyhow::Result<Outbox> {
        if store.backend() == sea_orm::DbBackend::Sqlite {
            store.release_all_webhook_claims().await?;
        }
        let timeout = Duration::from_secs_f64(settings.timeout_secs);
        let sender = Sender::new(settings.targets(), timeout)?;
        let schedule = RetrySchedule::new(
            settings
                .retry_schedule_secs
                .iter()
                .map(|secs| Duration::from_secs_f64(*secs))
                .collect(),
        );
        let workers = WorkerSettings {
            workers: settings.workers,
            per_endpoint: settings.per_endpoint,
            poll: Duration::from_secs_f64(settings.poll_secs),
            timeout,
            // An attempt's timeout and some: a claim outlives the attempt it is for.
            lease: timeout + Duration::from_secs(10),
            disable_after: Duration::from_secs_f64(settings.disable_after_secs),
            schedule,
        };
        Ok(Outbox::start(
            store.clone(),
            sender,
            workers,
            tail,
            shutdown,
        ))
    }

    /// Starts the workers.
    fn start(
        store: Store,
        sender: Sender,
        settings: WorkerSettings,
        tail: Arc<Tail>,
        shutdown: Shutdown,
    ) -> Outbox {
        let outbox = Outbox {
            wake: Arc::new(Notify::new()),
            stats: Arc::new(WebhookStats::default()),
        };
        let worker = Worker {
            store: store.clone(),
            sender: Arc::new(sender),
            settings,
            wake: outbox.wake.clone(),
            ended: Notify::new(),
            stats: outbox.stats.clone(),
            tail,
        };
        tokio::spawn(worker.run(shutdown.clone()));
        tokio::spawn(count_pending(store, outbox.stats.clone(), shutdown));
        outbox
    }

    /// This node wrote messages that are due now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }
}

async fn count_pending(store: Store, stats: Arc<WebhookStats>, shutdown: Shutdown) {
    let stopping = shutdown.wait();
    tokio::pin!(stopping);
    let mut every = tokio::time::interval(PENDING_EVERY);
    loop {
        tokio::select! {
            _ = &mut stopping => return,
            _ = every.tick() => {}
        }
        match store.pending_webhooks().await {
            Ok(pending) => *stats.pending.lock().unwrap_or_else(|p| p.into_inner()) = pending,
            Err(error) => tracing::debug!(%error, "webhooks: cannot count pending messages"),
        }
    }
}
