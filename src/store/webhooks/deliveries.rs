//! The deliveries log: an endpoint's messages with every attempt, newest first; a message
//! made due again by hand; what is pruned once it is old; what is still due.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::super::entities::{webhook_attempt, webhook_message};
use super::super::{Store, StoreError, cut_page};
use super::outbox::{Attempt, PENDING};
use crate::domain::now_ms;

/// A message and its attempts, as the deliveries log shows them.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub kind: String,
    pub status: String,
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<i64>,
}

impl Store {
    /// An endpoint's messages, newest first, each with its attempts: a page of `limit`
    /// before the message `before`, and whether there are older ones.
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        before: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<Delivery>, bool), StoreError> {
        let mut query = webhook_message::Entity::find()
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id));
        if let Some(before) = before {
            query = query.filter(webhook_message::Column::Id.lt(before));
        }
        let mut messages = query
            .order_by_desc(webhook_message::Column::Id)
            .limit(limit + 1)
            .all(self.reader())
            .await?;
        let more = cut_page(&mut messages, limit);
        let attempts = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::MessageId.is_in(messages.iter().map(|m| m.id.clone())))
            .order_by_asc(webhook_attempt::Column::Id)
            .all(self.reader())
            .await?;
        let deliveries = messages
            .into_iter()
            .map(|message| Delivery {
                attempts: attempts
                    .iter()
                    .filter(|a| a.message_id == message.id)
                    .map(|a| Attempt {
                        at: a.at,
                        status_code: a.status_code.and_then(|c| u16::try_from(c).ok()),
                        error: a.error.clone(),
                        duration_ms: a.duration_ms,
                    })
                    .collect(),
                message_id: message.id,
                kind: message.kind,
                status: message.status,
                next_attempt_at: message.next_attempt_at,
            })
            .collect();
        Ok((deliveries, more))
    }

    /// Makes a message of the endpoint due now, whatever its state; `false` if the
    /// endpoint has no such message.
    pub async fn retry_webhook(
        &self,
        endpoint_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        let updated = webhook_message::Entity::update_many()
            .col_expr(webhook_message::Column::Status, Expr::value(PENDING))
            .col_expr(
                webhook_message::Column::NextAttemptAt,
                Expr::value(now_ms()),
            )
            .col_expr(
                webhook_message::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(webhook_message::Column::Id.eq(message_id))
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id))
            .exec(self.writer())
            .await?;
        Ok(updated.rows_affected > 0)
    }

    /// Removes messages older than `before_ms` that are no longer due, with their
    /// attempts: how many.
    pub async fn prune_webhook_messages(&self, before_ms: i64) -> Result<u64, StoreError> {
        let deleted = webhook_message::Entity::delete_many()
            .filter(webhook_message::Column::CreatedAt.lt(before_ms))
            .filter(webhook_message::Column::Status.ne(PENDING))
            .exec(self.writer())
            .await?;
        Ok(deleted.rows_affected)
    }

    /// Messages still due, deployment-wide, per type.
    pub async fn pending_webhooks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(webhook_message::Entity::find()
            .select_only()
            .column(webhook_message::Column::Kind)
            .column_as(webhook_message::Column::Id.count(), "pending")
            .filter(webhook_message::Column::Status.eq(PENDING))
            .group_by(webhook_message::Column::Kind)
            .into_tuple()
            .all(self.reader())
            .await?)
    }
}
