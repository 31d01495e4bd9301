//! Reading the facts back: for the backend's `GET /v1/receipts`, and for a fallback when
//! it falls due.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::positions::covered_at;
use crate::domain::event::EventId;
use crate::domain::receipt::{Fact, Facts};
use crate::store::entities::{event, receipt};
use crate::store::{Store, StoreError};

/// An event of a user's stream, as much of it as its facts need.
pub(super) struct Subject {
    pub seq: i64,
    pub created_at: i64,
    pub inbox: bool,
    pub seen_at: Option<i64>,
    pub read_at: Option<i64>,
}

/// A fallback's state, as the backend reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackStatus {
    pub unless: Fact,
    pub after_secs: i64,
    /// Set while it is pending.
    pub due_at: Option<i64>,
    /// `fired`, `skipped` or `cancelled` once decided.
    pub outcome: Option<String>,
    pub settled_at: Option<i64>,
}

/// What Herald knows of one event with one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub facts: Facts,
    pub fallback: Option<FallbackStatus>,
}

/// The settled facts of `subject` for `user`: the row's marks and the positions covering it
/// (read only for an inbox item; nothing is delivered before it was created).
pub(super) async fn facts_of(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    user: &str,
    subject: &Subject,
) -> Result<Facts, StoreError> {
    let delivered_at = covered_at(db, tenant_id, user, Fact::Delivered, subject.seq)
        .await?
        .map(|at| at.max(subject.created_at));
    let read_through = match subject.inbox {
        true => covered_at(db, tenant_id, user, Fact::Read, subject.seq).await?,
        false => None,
    };
    let read_at = match (subject.read_at, read_through) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Facts {
        delivered_at,
        seen_at: subject.seen_at,
        read_at,
    }
    .settled())
}

/// The user's events among `seqs` (their own and the broadcasts), with their marks.
async fn subjects(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    user: &str,
    seqs: &[i64],
) -> Result<Vec<(Subject, Option<FallbackStatus>)>, StoreError> {
    let events = event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant_id))
        .filter(event::Column::Seq.is_in(seqs.iter().copied()))
        .filter(event::user_or_broadcast(user))
        .all(db)
        .await?;
    let marks = receipt::Entity::find()
        .filter(receipt::Column::TenantId.eq(tenant_id))
        .filter(receipt::Column::UserId.eq(user))
        .filter(receipt::Column::Seq.is_in(events.iter().map(|e| e.seq)))
        .all(db)
        .await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let mark = marks.iter().find(|m| m.seq == e.seq);
            let fallback = mark.and_then(|m| {
                Some(FallbackStatus {
                    unless: Fact::parse(m.fallback_unless.as_deref()?)?,
                    after_secs: i64::from(m.fallback_after_secs?),
                    due_at: m.fallback_due_at,
                    outcome: m.fallback_outcome.clone(),
                    settled_at: m.fallback_settled_at,
                })
            });
            let subject = Subject {
                seq: e.seq,
                created_at: e.created_at,
                inbox: e.inbox_ordinal.is_some(),
                seen_at: mark.and_then(|m| m.seen_at),
                read_at: mark.and_then(|m| m.read_at),
            };
            (subject, fallback)
        })
        .collect())
}

impl Store {
    /// What Herald knows of each of `ids` with `user`, in their order: nothing for an id
    /// that is not an event of the user's stream this log still holds.
    pub async fn receipts(
        &self,
        tenant_id: i64,
        epoch: &str,
        user: &str,
        ids: &[EventId],
    ) -> Result<Vec<Receipt>, StoreError> {
        let db = self.reader();
        let seqs: Vec<i64> = ids
            .iter()
            .filter(|id| id.epoch == epoch)
            .map(|id| id.seq)
            .collect();
        let subjects = subjects(db, tenant_id, user, &seqs).await?;
        let mut answer = Vec::with_capacity(ids.len());
        for id in ids {
            let known = subjects
                .iter()
                .find(|(s, _)| s.seq == id.seq && id.epoch == epoch);
            answer.push(match known {
                Some((subject, fallback)) => Receipt {
                    facts: facts_of(db, tenant_id, user, subject).await?,
                    fallback: fallback.clone(),
                },
                None => Receipt::default(),
            });
        }
        Ok(answer)
    }
}
