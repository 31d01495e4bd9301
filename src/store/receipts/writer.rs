//! Browsers' receipts, group committed: one task takes every receipt request that is
//! waiting, writes them all in one transaction — per user one delivery position at most,
//! however many of their tabs and requests are in the group — and only then answers each.
//! So a receipt that was answered is durable, and ten thousand users acknowledging every
//! second cost a few commits a second, not ten thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use super::marks::{mark, unseen_of_user};
use super::positions::{delivery_advance, write_positions};
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
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
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

/// What a group holds for one user: the furthest delivery and every seen id.
#[derive(Default)]
struct UserReceipts {
    delivered: Option<i64>,
    seen: BTreeSet<i64>,
}

/// Writes a group: per tenant, each user's furthest delivery position and their new seen
/// marks, with the tenant's usage figures.
async fn commit(store: &Store, requests: &[ReceiptRequest]) -> Result<(), StoreError> {
    let mut by_tenant: BTreeMap<i64, BTreeMap<&str, (&UserId, Vec<&ReceiptRequest>)>> =
        BTreeMap::new();
    for request in requests {
        by_tenant
            .entry(request.tenant_id)
            .or_default()
            .entry(request.user.as_str())
            .or_insert_with(|| (&request.user, Vec::new()))
            .1
            .push(request);
    }
    let txn = store.begin_write().await?;
    let now = now_ms();
    let (mut delivered_total, mut seen_total) = (0, 0);
    for (tenant_id, users) in by_tenant {
        let Some(log) = tenant::Entity::find_by_id(tenant_id).one(&txn).await? else {
            continue;
        };
        let head = log.next_seq - 1;
        // An id of this log, still held, not beyond its head: anything else names no event.
        let in_log =
            |id: &EventId| id.epoch == log.epoch && id.seq > log.pruned_seq && id.seq <= head;
        let mut moves = Vec::new();
        let mut counts = UsageCounts::default();
        for (user, (_, requests)) in users {
            let mut receipts = UserReceipts::default();
            for request in requests {
                if let Some(id) = request.delivered.as_ref().filter(|id| in_log(id)) {
                    receipts.delivered = receipts.delivered.max(Some(id.seq));
                }
                receipts
                    .seen
                    .extend(request.seen.iter().filter(|id| in_log(id)).map(|id| id.seq));
            }
            if let Some(seq) = receipts.delivered {
                let advance = delivery_advance(&txn, tenant_id, user, log.pruned_seq, seq).await?;
                if let Some(seq) = advance.moves_to {
                    moves.push((user.to_owned(), seq));
                }
                counts.receipts_delivered += advance.newly;
            }
            if !receipts.seen.is_empty() {
                let seqs: Vec<i64> = receipts.seen.into_iter().collect();
                let unseen = unseen_of_user(&txn, tenant_id, user, &seqs).await?;
                mark(&txn, tenant_id, user, Fact::Seen, &unseen, now).await?;
                counts.receipts_seen += unseen.len() as i64;
            }
        }
        write_positions(&txn, tenant_id, Fact::Delivered, &moves, now).await?;
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
