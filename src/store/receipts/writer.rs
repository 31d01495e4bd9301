//! Browsers' receipts, group committed: one task takes every receipt request that is
//! waiting, writes them all in one transaction — per user one delivery position at most,
//! however many of their tabs and requests are in the group — and only then answers each.
//! So a receipt that was answered is durable, and ten thousand users acknowledging every
//! second cost a few commits a second, not ten thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::marks::{mark, unseen};
use super::positions::{delivery_advances, write_positions};
use crate::domain::event::EventId;
use crate::domain::names::UserId;
use crate::domain::now_ms;
use crate::domain::receipt::Fact;
use crate::metrics;
use crate::store::entities::tenant;
use crate::store::usage::{UsageCounts, add_usage, day_of};
use crate::store::{Store, StoreError};
use sea_orm::EntityTrait;

/// The most requests one transaction takes; more wait for the next one.
const MAX_GROUP: usize = 4_096;
/// How long a group gathers requests after its first. Nobody waits on a receipt (a page
/// sends it and goes on), so a few milliseconds here buy a commit shared by many more.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);
/// How many receipt requests may wait for the writer before browsers are held back.
const QUEUE_DEPTH: usize = 8_192;

/// One browser's receipt: the user's stream up to `delivered` reached a page, and the
/// events `seen` were seen. Ids that are not this user's events change nothing.
#[derive(Debug)]
pub struct ReceiptRequest {
    pub tenant_id: i64,
    pub user: UserId,
    pub delivered: Option<EventId>,
    pub seen: Vec<EventId>,
}

struct Job {
    request: ReceiptRequest,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle receipts are recorded through; cheap to clone.
#[derive(Clone)]
pub struct ReceiptWriter {
    jobs: mpsc::Sender<Job>,
}

impl ReceiptWriter {
    /// Starts the writer task on the current runtime. It ends when every handle is dropped.
    pub fn start(store: Store) -> ReceiptWriter {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_writer(store, queue));
        ReceiptWriter { jobs }
    }

    /// Records a receipt and returns once it is committed.
    pub async fn record(&self, request: ReceiptRequest) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { request, reply })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run_writer(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        let until = tokio::time::Instant::now() + GATHER;
        while group.len() < MAX_GROUP {
            match tokio::time::timeout_at(until, queue.recv()).await {
                Ok(Some(job)) => group.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|j| (j.request, j.reply)).unzip();
        match commit(&store, &requests).await {
            Ok(()) => {
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = requests.len(), "receipts not recorded");
                if let Some(fault) = error.fault() {
                    store.health().failed(fault);
                }
                for reply in replies {
                    let _ = reply.send(Err(error.for_another_waiter()));
                }
            }
        }
    }
}

/// Writes a group: per tenant, the furthest delivery of each user and the new seen marks
/// (a few statements for the whole tenant, however many users), with the usage figures.
async fn commit(store: &Store, requests: &[ReceiptRequest]) -> Result<(), StoreError> {
    let mut by_tenant: BTreeMap<i64, Vec<&ReceiptRequest>> = BTreeMap::new();
    for request in requests {
        by_tenant
            .entry(request.tenant_id)
            .or_default()
            .push(request);
    }
    let txn = store.begin_write().await?;
    let now = now_ms();
    let (mut delivered_total, mut seen_total) = (0, 0);
    for (tenant_id, requests) in by_tenant {
        let Some(log) = tenant::Entity::find_by_id(tenant_id).one(&txn).await? else {
            continue;
        };
        let head = log.next_seq - 1;
        // An id of this log, still held, not beyond its head: anything else names no event.
        let in_log =
            |id: &EventId| id.epoch == log.epoch && id.seq > log.pruned_seq && id.seq <= head;
        let mut delivered: BTreeMap<&str, i64> = BTreeMap::new();
        let mut seen: BTreeSet<(&str, i64)> = BTreeSet::new();
        for request in requests {
            let user = request.user.as_str();
            if let Some(id) = request.delivered.as_ref().filter(|id| in_log(id)) {
                let furthest = delivered.entry(user).or_insert(id.seq);
                *furthest = (*furthest).max(id.seq);
            }
            seen.extend(
                request
                    .seen
                    .iter()
                    .filter(|id| in_log(id))
                    .map(|id| (user, id.seq)),
            );
        }
        let mut counts = UsageCounts::default();
        if !delivered.is_empty() {
            let asked: Vec<(&str, i64)> = delivered.into_iter().collect();
            let advances = delivery_advances(&txn, tenant_id, log.pruned_seq, &asked).await?;
            write_positions(&txn, tenant_id, Fact::Delivered, &advances.moves, now).await?;
            counts.receipts_delivered = advances.newly;
        }
        if !seen.is_empty() {
            let asked: Vec<(&str, i64)> = seen.into_iter().collect();
            let new = unseen(&txn, tenant_id, &asked).await?;
            let marks: Vec<(&str, i64)> = new.iter().map(|(u, seq)| (u.as_str(), *seq)).collect();
            mark(&txn, tenant_id, Fact::Seen, &marks, now).await?;
            counts.receipts_seen = marks.len() as i64;
        }
        delivered_total += counts.receipts_delivered;
        seen_total += counts.receipts_seen;
        add_usage(&txn, tenant_id, day_of(now), counts).await?;
    }
    txn.commit().await?;
    metrics::RECEIPT_REQUESTS.fetch_add(requests.len() as u64, Ordering::Relaxed);
    metrics::RECEIPTS_DELIVERED.fetch_add(delivered_total as u64, Ordering::Relaxed);
    metrics::RECEIPTS_SEEN.fetch_add(seen_total as u64, Ordering::Relaxed);
    Ok(())
}
