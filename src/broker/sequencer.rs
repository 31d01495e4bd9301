//! The sequencer: hands the hub each tenant's events in seq order, exactly once each,
//! whichever node committed them and however they arrived.
//!
//! It remembers, per tenant, the last seq its hub has been given. Seqs are handed out under
//! the tenant's counter-row lock in the inserting transaction, so when any event of a
//! tenant is known committed, every lower seq is committed and readable too. A group that
//! starts past the next expected seq therefore means a notice went missing, and the gap is
//! read from the database right away, before the group is delivered. A catch-up compares
//! each tenant's head in the database with what was delivered and reads whatever is
//! missing, so a notice lost without a later one to reveal the gap is late by at most one
//! catch-up interval, never lost.
//!
//! It knows nothing of Redis: the transport hands it `Work`. Streams still drop seqs they
//! have sent (see `hub::connection`), so an event both replayed and delivered live reaches
//! each stream once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::BrokerStats;
use crate::domain::log::LoggedEvent;
use crate::hub::Hub;
use crate::store::log::CommitListener;
use crate::store::{Store, StoreError};

/// Events read from the database per gap query.
const GAP_PAGE: u64 = 1_000;

pub(super) enum Work {
    /// A commit group, this node's own or another's (as its notice said): both are
    /// delivered alike, in seq order, gaps read first.
    Committed(Vec<LoggedEvent>),
    /// Compare every tenant's head with what was delivered and fill any gap.
    CatchUp,
}

/// Hands the hub each tenant's events in seq order, exactly once each, filling gaps from
/// the database.
pub(super) struct Sequencer {
    pub(super) store: Store,
    pub(super) hub: Hub,
    /// Per tenant, the last seq handed to the hub. A tenant missing here was created after
    /// this node started: everything of its log is new to this node.
    pub(super) delivered: HashMap<i64, i64>,
    pub(super) stats: Arc<BrokerStats>,
}

impl Sequencer {
    pub(super) async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Work>) {
        while let Some(work) = queue.recv().await {
            let outcome = match work {
                Work::Committed(events) => self.deliver(events).await,
                Work::CatchUp => self.catch_up().await,
            };
            if let Err(error) = outcome {
                // What could not be read now is read at the next catch-up.
                tracing::error!(%error, "broker: cannot read missed events from the log");
            }
        }
    }

    /// Delivers a commit group (its events are in seq order per tenant), reading first what
    /// is missing before each tenant's part.
    async fn deliver(&mut self, events: Vec<LoggedEvent>) -> Result<(), StoreError> {
        let mut by_tenant: Vec<(i64, Vec<LoggedEvent>)> = Vec::new();
        for event in events {
            match by_tenant
                .iter_mut()
                .find(|(tenant, _)| *tenant == event.tenant_id)
            {
                Some((_, group)) => group.push(event),
                None => by_tenant.push((event.tenant_id, vec![event])),
            }
        }
        for (tenant, group) in by_tenant {
            let Some(first) = group.first() else { continue };
            let epoch = first.id.epoch.clone();
            let last_seq = group.last().map_or(0, |e| e.id.seq);
            self.fill(tenant, &epoch, first.id.seq - 1).await?;
            let done = self.delivered.get(&tenant).copied().unwrap_or(0);
            let fresh: Vec<&LoggedEvent> = group.iter().filter(|e| e.id.seq > done).collect();
            if !fresh.is_empty() {
                self.hub.committed(&fresh);
                self.delivered.insert(tenant, done.max(last_seq));
            }
        }
        Ok(())
    }

    /// Reads from the log and delivers whatever of `tenant` lies between what was delivered
    /// and `up_to_seq`.
    async fn fill(&mut self, tenant: i64, epoch: &str, up_to_seq: i64) -> Result<(), StoreError> {
        loop {
            let done = self.delivered.get(&tenant).copied().unwrap_or(0);
            if done >= up_to_seq {
                return Ok(());
            }
            let missed = self
                .store
                .read_range(tenant, epoch, done, up_to_seq, GAP_PAGE)
                .await?;
            self.stats
                .events_read_from_log
                .fetch_add(missed.len() as u64, Ordering::Relaxed);
            let reached = if (missed.len() as u64) < GAP_PAGE {
                // Retention may have removed some: nothing below up_to_seq is left to wait for.
                up_to_seq
            } else {
                missed.last().map_or(up_to_seq, |e| e.id.seq)
            };
            if !missed.is_empty() {
                self.hub.committed(&missed.iter().collect::<Vec<_>>());
            }
            self.delivered.insert(tenant, reached);
        }
    }

    /// Fills every tenant's gap up to its head in the database.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        let heads = self.store.log_heads().await?;
        let live: std::collections::HashSet<i64> = heads.iter().map(|(t, _, _)| *t).collect();
        self.delivered.retain(|tenant, _| live.contains(tenant));
        for (tenant, epoch, head) in heads {
            self.fill(tenant, &epoch, head).await?;
        }
        Ok(())
    }
}
