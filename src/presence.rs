//! The node's side of presence: it turns the hub's transitions (a user's first stream on
//! this node, their last one here gone) into the deployment's, written by the store
//! (`store::presence`), which sends `user.online` and `user.offline` once for the whole
//! deployment.
//!
//! Transitions are written a batch at a time (every `BATCH_EVERY`, taken from the hub's
//! `PendingTransitions`), so a burst of connections costs a few transactions, not one each,
//! and telling one wakes no thread. A departure counts only if no
//! other node streams to the user; a grace that runs out ends in `user.offline` only if no
//! node streams to them then. A node that stops without saying goodbye leaves users the
//! store counts online: each node checks the online users against the streams the
//! deployment counts every `ORPHANS_EVERY` (and once at start, when it may be the one that
//! stopped) and starts the grace of those nobody streams to.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::domain::now_ms;
use std::sync::Arc;

use crate::hub::{Hub, PendingTransitions};
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::store::presence::{Transition, group_users};
use crate::webhooks::Outbox;

/// How long transitions gather before they are written.
const BATCH_EVERY: Duration = Duration::from_millis(100);
/// How often graces that ran out are settled.
const SETTLE_EVERY: Duration = Duration::from_millis(500);
/// How often online users are checked against the deployment's streams (with several
/// nodes; a single node checks once, at start).
pub const ORPHANS_EVERY: Duration = Duration::from_secs(10);
/// Users read or settled at a time.
const PAGE: u64 = 500;

pub struct PresenceTask {
    pub store: Store,
    pub hub: Hub,
    pub outbox: Outbox,
    pub grace: Duration,
    /// Other nodes may stream to the same users.
    pub several_nodes: bool,
}

impl PresenceTask {
    pub async fn run(self, transitions: Arc<PendingTransitions>, shutdown: Shutdown) {
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        let mut batch = tokio::time::interval(BATCH_EVERY);
        let mut settle = tokio::time::interval(SETTLE_EVERY);
        let mut orphans = tokio::time::interval(ORPHANS_EVERY);
        let mut checked_once = false;
        loop {
            tokio::select! {
                _ = &mut stopping => {
                    self.write(transitions.take()).await;
                    return;
                }
                _ = batch.tick() => self.write(transitions.take()).await,
                _ = settle.tick() => self.settle().await,
                _ = orphans.tick() => {
                    if self.several_nodes || !checked_once {
                        self.adopt_orphans().await;
                        checked_once = true;
                    }
                }
            }
        }
    }

    fn grace_ms(&self) -> i64 {
        self.grace.as_millis() as i64
    }

    /// Writes a batch: departures of users other nodes still stream to are dropped.
    async fn write(&self, mut transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        if self.several_nodes {
            let departed = group_users(
                transitions
                    .iter()
                    .filter(|t| !t.arrived)
                    .map(|t| (t.tenant_id, t.user.clone())),
            );
            for (tenant_id, users) in departed {
                // Unknown (Redis does not answer): the departure stands, and a grace that
                // runs out checks again.
                let Some(counts) = self.hub.user_streams_elsewhere(tenant_id, &users).await else {
                    continue;
                };
                let elsewhere: Vec<&String> = users
                    .iter()
                    .zip(counts)
                    .filter(|(_, count)| *count > 0)
                    .map(|(user, _)| user)
                    .collect();
                transitions.retain(|t| {
                    t.arrived || t.tenant_id != tenant_id || !elsewhere.contains(&&t.user)
                });
            }
        }
        match self
            .store
            .record_presence(&transitions, self.grace_ms())
            .await
        {
            Ok(wrote) => {
                if wrote {
                    self.outbox.wake();
                }
            }
            Err(error) => {
                tracing::warn!(%error, count = transitions.len(), "presence: cannot write transitions")
            }
        }
    }

    /// Users whose grace ran out go offline, unless a stream of theirs is open somewhere.
    async fn settle(&self) {
        let due = match self.store.offline_due(PAGE).await {
            Ok(due) if due.is_empty() => return,
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "presence: cannot read due departures");
                return;
            }
        };
        // Settled once the deployment's streams can be counted again.
        let Some(gone) = self.without_streams(&due).await else {
            return;
        };
        let settled: Vec<((i64, String), bool)> = due.into_iter().zip(gone).collect();
        match self.store.settle_offline(settled).await {
            Ok(true) => self.outbox.wake(),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "presence: cannot settle departures"),
        }
    }

    /// Starts the grace of online users no node streams to.
    async fn adopt_orphans(&self) {
        let mut after: Option<(i64, String)> = None;
        loop {
            let page = match self.store.online_users(after.as_ref(), PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "presence: cannot read online users");
                    return;
                }
            };
            let Some(last) = page.last().cloned() else {
                return;
            };
            let full = page.len() as u64 == PAGE;
            let Some(gone) = self.without_streams(&page).await else {
                return;
            };
            let orphans: Vec<(i64, String)> = page
                .into_iter()
                .zip(gone)
                .filter(|(_, gone)| *gone)
                .map(|(user, _)| user)
                .collect();
            if let Err(error) = self
                .store
                .presence_orphaned(orphans, now_ms(), self.grace_ms())
                .await
            {
                tracing::warn!(%error, "presence: cannot start the grace of users nobody streams to");
                return;
            }
            if !full {
                return;
            }
            after = Some(last);
        }
    }

    /// For each user, whether the deployment has no open stream of theirs; `None` when the
    /// other nodes' streams cannot be counted now (Redis does not answer): nobody is taken
    /// for gone on one node's word.
    async fn without_streams(&self, users: &[(i64, String)]) -> Option<Vec<bool>> {
        let by_tenant = group_users(users.iter().cloned());
        let mut counts: BTreeMap<(i64, String), u64> = BTreeMap::new();
        for (tenant_id, names) in by_tenant {
            let streams = self.hub.user_streams_counted(tenant_id, &names).await?;
            for (name, count) in names.into_iter().zip(streams) {
                counts.insert((tenant_id, name), count);
            }
        }
        Some(
            users
                .iter()
                .map(|key| counts.get(key).copied().unwrap_or(0) == 0)
                .collect(),
        )
    }
}
