//! The outbox: messages to endpoints, written before they count as sent, claimed by one
//! node at a time when due, and every attempt's outcome.
//!
//! A claim is a lease (`claimed_until`): the node that holds it attempts the message; one
//! that dies mid-attempt leaves it to whichever node claims it once the lease is over, so
//! a message is attempted at least once and never lost. On PostgreSQL nodes claim with
//! `FOR UPDATE SKIP LOCKED`, so two never take the same message; on SQLite the one writer
//! makes each claim whole.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, Statement, Value,
};

use super::super::entities::{webhook_attempt, webhook_endpoint, webhook_message};
use super::super::{Store, StoreError};
use super::endpoints::disable;
use crate::domain::webhook::{Endpoint, MessageType};
use crate::domain::{format_ms, now_ms};

pub(crate) const PENDING: &str = "pending";
pub(crate) const DELIVERED: &str = "delivered";
pub(crate) const FAILED: &str = "failed";

/// Who a new message goes to.
#[derive(Debug, Clone, Copy)]
pub enum Recipients<'a> {
    /// Every enabled endpoint of the tenant whose `events` name the type.
    Subscribed,
    /// This endpoint of the tenant's, whatever its `events` and state (a test message).
    Endpoint(&'a str),
}

/// A message a node has claimed, with the endpoint it goes to.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub body: String,
    /// Attempts before this one.
    pub attempts: i32,
    pub endpoint: Endpoint,
    /// The W3C `traceparent` of what caused it, sent on with every attempt.
    pub traceparent: Option<String>,
}

/// One attempt, as the deliveries log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What becomes of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Failed; due again then.
    RetryAt(i64),
    /// Failed for good: its retries are spent.
    Failed,
    /// The endpoint answered 410: it is disabled at once.
    Gone,
}

/// The body every attempt of a message sends.
fn body(kind: MessageType, data: &serde_json::Value, now: i64) -> String {
    message_body(kind, data, &format_ms(now))
}

/// The largest body a message is sent with.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A message's body: `{"type","timestamp","data"}`, within `MAX_BODY_BYTES`. An event the
/// data carries (`data.event`, with its `id` and `to`) whose own data would make the body
/// larger goes without it — `"data": null, "data_omitted": true` — and with `fetch`, the
/// history call that returns it (`GET /v1/events` from just before it, one event).
fn message_body(kind: MessageType, data: &serde_json::Value, timestamp: &str) -> String {
    let body = |data: &serde_json::Value| {
        serde_json::json!({"type": kind.as_str(), "timestamp": timestamp, "data": data}).to_string()
    };
    let whole = body(data);
    if whole.len() <= MAX_BODY_BYTES {
        return whole;
    }
    let event = &data["event"];
    let (Some(id), Some(user)) = (event["id"].as_str(), event["to"]["user"].as_str()) else {
        return whole;
    };
    let Some((epoch, seq)) = id
        .rsplit_once('-')
        .and_then(|(epoch, seq)| Some((epoch, seq.parse::<i64>().ok()?)))
    else {
        return whole;
    };
    let user = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC);
    let mut slim = data.clone();
    slim["event"]["data"] = serde_json::Value::Null;
    slim["event"]["data_omitted"] = true.into();
    slim["event"]["fetch"] = format!(
        "/v1/events?user={user}&after={epoch}-{}&limit=1",
        std::cmp::max(seq - 1, 0)
    )
    .into();
    body(&slim)
}

/// What one new message says, and the W3C `traceparent` of what caused it, when that is
/// known: each attempt sends it on.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub data: serde_json::Value,
    pub traceparent: Option<String>,
}

impl From<serde_json::Value> for NewMessage {
    fn from(data: serde_json::Value) -> Self {
        NewMessage {
            data,
            traceparent: None,
        }
    }
}

/// Writes a message of `kind` for each of `messages` to each of `to`, due now, inside the
/// caller's transaction: the ids of the messages written (none if no endpoint wants them).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    kind: MessageType,
    messages: &[NewMessage],
    to: Recipients<'_>,
) -> Result<Vec<String>, StoreError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut endpoints =
        webhook_endpoint::Entity::find().filter(webhook_endpoint::Column::TenantId.eq(tenant_id));
    endpoints = match to {
        Recipients::Subscribed => endpoints.filter(webhook_endpoint::Column::DisabledAt.is_null()),
        Recipients::Endpoint(id) => endpoints.filter(webhook_endpoint::Column::Id.eq(id)),
    };
    let now = now_ms();
    let mut wanting = Vec::new();
    for model in endpoints.all(db).await? {
        let endpoint = Endpoint::try_from(model)?;
        if matches!(to, Recipients::Endpoint(_)) || endpoint.subscription.includes(kind) {
            wanting.push(endpoint.id);
        }
    }
    let bodies: Vec<String> = messages
        .iter()
        .map(|message| body(kind, &message.data, now))
        .collect();
    let mut ids = Vec::new();
    for endpoint_id in &wanting {
        for (body, message) in bodies.iter().zip(messages) {
            let body = body.clone();
            let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
            webhook_message::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(tenant_id),
                endpoint_id: Set(endpoint_id.clone()),
                kind: Set(kind.as_str().to_owned()),
                body: Set(body),
                created_at: Set(now),
                status: Set(PENDING.to_owned()),
                next_attempt_at: Set(Some(now)),
                claimed_until: Set(None),
                attempts: Set(0),
                traceparent: Set(message.traceparent.clone()),
            }
            .insert(db)
            .await?;
            ids.push(id);
        }
    }
    Ok(ids)
}

impl Store {
    /// Writes a message (see `enqueue`) in a transaction of its own.
    pub async fn enqueue_webhook(
        &self,
        tenant_id: i64,
        kind: MessageType,
        messages: &[NewMessage],
        to: Recipients<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_write().await?;
        let ids = enqueue(&txn, tenant_id, kind, messages, to).await?;
        txn.commit().await?;
        Ok(ids)
    }

    /// Endpoints with a message due and unclaimed now, up to `limit` of them, none of
    /// `busy` (this node attempts as many of theirs as it will at once). One look into
    /// the per-endpoint due index for each endpoint: what it costs grows with the
    /// endpoints, never with how many messages one of them has waiting.
    pub async fn endpoints_with_due_webhooks(
        &self,
        limit: usize,
        busy: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let writer = self.writer();
        let backend = writer.get_database_backend();
        let mut values: Vec<Value> = vec![now_ms().into(), (limit as i64).into()];
        let mut exclusion = String::new();
        if !busy.is_empty() {
            let list: Vec<String> = (0..busy.len()).map(|n| format!("${}", n + 3)).collect();
            exclusion = format!("AND e.id NOT IN ({})", list.join(", "));
            values.extend(busy.iter().map(|id| Value::from(id.as_str())));
        }
        let sql = format!(
            "SELECT e.id FROM webhook_endpoints e WHERE EXISTS (\
               SELECT 1 FROM webhook_messages m \
               WHERE m.endpoint_id = e.id \
                 AND m.next_attempt_at IS NOT NULL AND m.next_attempt_at <= $1 \
                 AND (m.claimed_until IS NULL OR m.claimed_until <= $1)) {exclusion} \
             LIMIT $2"
        );
        let rows = writer
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String>("", "id")?))
            .collect()
    }

    /// Claims up to `limit` of the endpoint's due messages until `lease_until`, soonest
    /// due first.
    pub async fn claim_due_webhooks(
        &self,
        endpoint_id: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let writer = self.writer();
        let backend = writer.get_database_backend();
        let now = now_ms();
        let lock = match backend {
            DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE webhook_messages SET claimed_until = $1 WHERE id IN (\
               SELECT m.id FROM webhook_messages m \
               WHERE m.endpoint_id = $2 \
                 AND m.next_attempt_at IS NOT NULL AND m.next_attempt_at <= $3 \
                 AND (m.claimed_until IS NULL OR m.claimed_until <= $3) \
               ORDER BY m.next_attempt_at LIMIT $4 {lock}) \
             RETURNING id, type, body, attempts, next_attempt_at, traceparent"
        );
        let values: Vec<Value> = vec![
            lease_until.into(),
            endpoint_id.into(),
            now.into(),
            (limit as i64).into(),
        ];
        let rows = writer
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // An endpoint removed since took its messages with it.
        let Some(endpoint) = webhook_endpoint::Entity::find_by_id(endpoint_id)
            .one(writer)
            .await?
        else {
            return Ok(Vec::new());
        };
        let endpoint = Endpoint::try_from(endpoint)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let due: i64 = row.try_get("", "next_attempt_at")?;
            claimed.push((
                due,
                Claimed {
                    id: row.try_get("", "id")?,
                    kind: row.try_get("", "type")?,
                    body: row.try_get("", "body")?,
                    attempts: row.try_get("", "attempts")?,
                    endpoint: endpoint.clone(),
                    traceparent: row.try_get("", "traceparent")?,
                },
            ));
        }
        // RETURNING keeps no order: the soonest due is attempted first.
        claimed.sort_by(|(a_due, a), (b_due, b)| (a_due, &a.id).cmp(&(b_due, &b.id)));
        Ok(claimed.into_iter().map(|(_, claimed)| claimed).collect())
    }

    /// Gives back claims this node will not attempt after all (it is stopping, or held
    /// them too long to start an attempt within their lease): due again at once, for any
    /// node.
    pub async fn release_webhooks(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        webhook_message::Entity::update_many()
            .col_expr(
                webhook_message::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(webhook_message::Column::Id.is_in(ids.iter().cloned()))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Gives back every claim: on SQLite, where this process is the only node, those a
    /// run that was killed left behind (no other node holds them).
    pub async fn release_all_webhook_claims(&self) -> Result<(), StoreError> {
        webhook_message::Entity::update_many()
            .col_expr(
                webhook_message::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .filter(webhook_message::Column::ClaimedUntil.is_not_null())
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Records attempts and what follows each, in one transaction: the endpoints disabled
    /// by them (one answered 410, or has failed for `disable_after_ms` without a success).
    /// Delivered messages — nearly all of them — are recorded a few statements for the
    /// lot, so the outbox's pace is not one commit per message.
    pub async fn finish_webhook_attempts(
        &self,
        finished: &[Finished],
        disable_after_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.begin_write().await?;
        let (delivered, others): (Vec<&Finished>, Vec<&Finished>) =
            finished.iter().partition(|f| f.next == Next::Delivered);
        let mut recorded: Vec<&Finished> = record_delivered(&txn, &delivered).await?;
        let mut disabled = Vec::new();
        for finished in others {
            if record_failed(&txn, finished, disable_after_ms, &mut disabled).await? {
                recorded.push(finished);
            }
        }
        if !recorded.is_empty() {
            webhook_attempt::Entity::insert_many(recorded.iter().map(|f| {
                webhook_attempt::ActiveModel {
                    message_id: Set(f.message.id.clone()),
                    at: Set(f.attempt.at),
                    status_code: Set(f.attempt.status_code.map(i32::from)),
                    error: Set(f.attempt.error.clone()),
                    duration_ms: Set(f.attempt.duration_ms),
                    ..Default::default()
                }
            }))
            .exec(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(disabled)
    }
}

/// An attempt that ended, and what follows it.
#[derive(Debug)]
pub struct Finished {
    pub message: Claimed,
    pub attempt: Attempt,
    pub next: Next,
}

/// The update an attempt makes to its message: its status and when it is due next, its
/// claim given up, one attempt more.
fn attempted(status: &str, next_at: Option<i64>) -> sea_orm::UpdateMany<webhook_message::Entity> {
    webhook_message::Entity::update_many()
        .col_expr(webhook_message::Column::Status, Expr::value(status))
        .col_expr(webhook_message::Column::NextAttemptAt, Expr::value(next_at))
        .col_expr(
            webhook_message::Column::ClaimedUntil,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            webhook_message::Column::Attempts,
            Expr::col(webhook_message::Column::Attempts).add(1),
        )
}

/// Marks the messages delivered and clears their endpoints' failing spells: those still
/// there (a message goes with its endpoint when that is removed).
async fn record_delivered<'a>(
    db: &impl ConnectionTrait,
    delivered: &[&'a Finished],
) -> Result<Vec<&'a Finished>, StoreError> {
    if delivered.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = delivered.iter().map(|f| f.message.id.as_str()).collect();
    let updated = attempted(DELIVERED, None)
        .filter(webhook_message::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    let present: Vec<&Finished> = if updated.rows_affected as usize == delivered.len() {
        delivered.to_vec()
    } else {
        let still: Vec<String> = webhook_message::Entity::find()
            .select_only()
            .column(webhook_message::Column::Id)
            .filter(webhook_message::Column::Id.is_in(ids.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        delivered
            .iter()
            .copied()
            .filter(|f| still.contains(&f.message.id))
            .collect()
    };
    let mut endpoints: Vec<&str> = present
        .iter()
        .map(|f| f.message.endpoint.id.as_str())
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::FailingSince,
            Expr::value(Option::<i64>::None),
        )
        .filter(webhook_endpoint::Column::Id.is_in(endpoints))
        .filter(webhook_endpoint::Column::FailingSince.is_not_null())
        .exec(db)
        .await?;
    Ok(present)
}

/// Records a failed attempt's message as due again or failed, starts or continues its
/// endpoint's failing spell and disables the endpoint when the spell is long enough or
/// the answer was 410 (adding it to `disabled`): `false` if the message is gone.
async fn record_failed(
    db: &impl ConnectionTrait,
    finished: &Finished,
    disable_after_ms: i64,
    disabled: &mut Vec<String>,
) -> Result<bool, StoreError> {
    let (status, next_at) = match finished.next {
        Next::RetryAt(at) => (PENDING, Some(at)),
        Next::Delivered | Next::Failed | Next::Gone => (FAILED, None),
    };
    let updated = attempted(status, next_at)
        .filter(webhook_message::Column::Id.eq(finished.message.id.as_str()))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    let endpoint_id = finished.message.endpoint.id.as_str();
    let at = finished.attempt.at;
    if finished.next == Next::Gone {
        disable(db, endpoint_id, at, "gone").await?;
        disabled.push(endpoint_id.to_owned());
        return Ok(true);
    }
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::FailingSince,
            Expr::col(webhook_endpoint::Column::FailingSince).if_null(at),
        )
        .filter(webhook_endpoint::Column::Id.eq(endpoint_id))
        .exec(db)
        .await?;
    let failing_since: Option<Option<i64>> = webhook_endpoint::Entity::find_by_id(endpoint_id)
        .select_only()
        .column(webhook_endpoint::Column::FailingSince)
        .filter(webhook_endpoint::Column::DisabledAt.is_null())
        .into_tuple()
        .one(db)
        .await?;
    if let Some(Some(since)) = failing_since
        && at - since >= disable_after_ms
    {
        disable(db, endpoint_id, at, "failing").await?;
        disabled.push(endpoint_id.to_owned());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_too_large_for_a_body_is_sent_as_where_to_fetch_it() {
        let small = serde_json::json!({"user": "al ice", "event": {"id": "E1-42", "to": {"user": "al ice"}, "data": "hi"}});
        let body = message_body(MessageType::NotificationUnseen, &small, "t");
        assert!(body.contains(r#""data":"hi""#));
        let large = serde_json::json!({"user": "al ice", "event": {"id": "E1-42", "to": {"user": "al ice"}, "type": "mail", "data": "x".repeat(100_000)}});
        let body = message_body(MessageType::NotificationUnseen, &large, "t");
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        let sent: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(sent["data"]["event"]["data"], serde_json::Value::Null);
        assert_eq!(sent["data"]["event"]["data_omitted"], true);
        assert_eq!(sent["data"]["event"]["type"], "mail");
        assert_eq!(
            sent["data"]["event"]["fetch"],
            "/v1/events?user=al%20ice&after=E1-41&limit=1"
        );
    }
}
