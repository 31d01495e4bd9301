//! Presence in the store: who the deployment counts online, when each user's last stream
//! closed, and when a user without streams goes offline. Every transition is a conditional
//! write, so however many nodes see a user come and go, `user.online` and `user.offline`
//! are each written once, in the transaction that makes the transition.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::presence;
use super::webhooks::{Recipients, enqueue};
use super::{Store, StoreError};
use crate::domain::webhook::MessageType;
use crate::domain::{format_ms, now_ms};

/// A user's first stream on a node opened, or their last one there closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub tenant_id: i64,
    pub user: String,
    pub at: i64,
    pub arrived: bool,
}

/// What the store knows of a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub online: bool,
    pub last_seen_at: Option<i64>,
}

fn user_key(tenant_id: i64, user: &str) -> Condition {
    Condition::all()
        .add(presence::Column::TenantId.eq(tenant_id))
        .add(presence::Column::UserId.eq(user))
}

impl Store {
    /// Applies node-level transitions in order, in one transaction: an arrival makes an
    /// offline user online (writing `user.online`) or keeps an online one from going; a
    /// departure of a user no node streams to any more starts their grace. Answers whether
    /// a message was written.
    pub async fn record_presence(
        &self,
        transitions: &[Transition],
        grace_ms: i64,
    ) -> Result<bool, StoreError> {
        if transitions.is_empty() {
            return Ok(false);
        }
        let txn = self.begin_write().await?;
        let mut wrote = false;
        for change in transitions {
            let key = || user_key(change.tenant_id, &change.user);
            if change.arrived {
                let back = presence::Entity::update_many()
                    .col_expr(
                        presence::Column::OfflineDueAt,
                        Expr::value(Option::<i64>::None),
                    )
                    .filter(key())
                    .filter(presence::Column::Online.eq(true))
                    .exec(&txn)
                    .await?;
                if back.rows_affected > 0 {
                    continue;
                }
                let came = presence::Entity::insert(presence::ActiveModel {
                    tenant_id: Set(change.tenant_id),
                    user_id: Set(change.user.clone()),
                    online: Set(true),
                    online_at: Set(change.at),
                    last_seen_at: Set(None),
                    offline_due_at: Set(None),
                })
                .on_conflict(
                    OnConflict::columns([presence::Column::TenantId, presence::Column::UserId])
                        .update_columns([
                            presence::Column::Online,
                            presence::Column::OnlineAt,
                            presence::Column::OfflineDueAt,
                        ])
                        .action_and_where(
                            Expr::col((presence::Entity, presence::Column::Online)).eq(false),
                        )
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
                if came > 0 {
                    let data = serde_json::json!({"user": change.user, "at": format_ms(change.at)});
                    let ids = enqueue(
                        &txn,
                        change.tenant_id,
                        MessageType::UserOnline,
                        &data,
                        Recipients::Subscribed,
                    )
                    .await?;
                    wrote |= !ids.is_empty();
                }
            } else {
                presence::Entity::update_many()
                    .col_expr(presence::Column::LastSeenAt, Expr::value(change.at))
                    .col_expr(
                        presence::Column::OfflineDueAt,
                        Expr::value(change.at + grace_ms),
                    )
                    .filter(key())
                    .filter(presence::Column::Online.eq(true))
                    .filter(presence::Column::OfflineDueAt.is_null())
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(wrote)
    }

    /// Users whose grace is over (at most `limit`): each `(tenant, user)`.
    pub async fn offline_due(&self, limit: u64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(presence::Entity::find()
            .select_only()
            .column(presence::Column::TenantId)
            .column(presence::Column::UserId)
            .filter(presence::Column::OfflineDueAt.lte(now_ms()))
            .order_by_asc(presence::Column::OfflineDueAt)
            .limit(limit)
            .into_tuple()
            .all(self.reader())
            .await?)
    }

    /// Ends the grace of each user of `due` whose grace is still over: those in `gone`
    /// (no stream anywhere) go offline, writing `user.offline`; the others stay online.
    /// Answers whether a message was written.
    pub async fn settle_offline(&self, due: &[((i64, String), bool)]) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let now = now_ms();
        let mut wrote = false;
        for ((tenant_id, user), gone) in due {
            let still_due = || {
                user_key(*tenant_id, user)
                    .add(presence::Column::Online.eq(true))
                    .add(presence::Column::OfflineDueAt.lte(now))
            };
            if !gone {
                presence::Entity::update_many()
                    .col_expr(
                        presence::Column::OfflineDueAt,
                        Expr::value(Option::<i64>::None),
                    )
                    .filter(still_due())
                    .exec(&txn)
                    .await?;
                continue;
            }
            let last_seen: Option<Option<i64>> = presence::Entity::find()
                .select_only()
                .column(presence::Column::LastSeenAt)
                .filter(still_due())
                .into_tuple()
                .one(&txn)
                .await?;
            let went = presence::Entity::update_many()
                .col_expr(presence::Column::Online, Expr::value(false))
                .col_expr(
                    presence::Column::OfflineDueAt,
                    Expr::value(Option::<i64>::None),
                )
                .filter(still_due())
                .exec(&txn)
                .await?;
            if went.rows_affected == 0 {
                continue;
            }
            let last_seen_at = last_seen.flatten().map(format_ms);
            let data = serde_json::json!({"user": user, "at": format_ms(now), "last_seen_at": last_seen_at});
            let ids = enqueue(
                &txn,
                *tenant_id,
                MessageType::UserOffline,
                &data,
                Recipients::Subscribed,
            )
            .await?;
            wrote |= !ids.is_empty();
        }
        txn.commit().await?;
        Ok(wrote)
    }

    /// Starts the grace of every online user in `users` that is not in it already, from
    /// `at`: users a node that stopped had streams for.
    pub async fn presence_orphaned(
        &self,
        users: &[(i64, String)],
        at: i64,
        grace_ms: i64,
    ) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write().await?;
        for (tenant_id, user) in users {
            presence::Entity::update_many()
                .col_expr(presence::Column::LastSeenAt, Expr::value(at))
                .col_expr(presence::Column::OfflineDueAt, Expr::value(at + grace_ms))
                .filter(user_key(*tenant_id, user))
                .filter(presence::Column::Online.eq(true))
                .filter(presence::Column::OfflineDueAt.is_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Online users with no grace running, in key order after `after`, `limit` at a time:
    /// what a node checks against the deployment's streams when another node stopped.
    pub async fn online_users(
        &self,
        after: Option<&(i64, String)>,
        limit: u64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut query = presence::Entity::find()
            .select_only()
            .column(presence::Column::TenantId)
            .column(presence::Column::UserId)
            .filter(presence::Column::Online.eq(true))
            .filter(presence::Column::OfflineDueAt.is_null());
        if let Some((tenant_id, user)) = after {
            query = query.filter(
                Condition::any()
                    .add(presence::Column::TenantId.gt(*tenant_id))
                    .add(
                        Condition::all()
                            .add(presence::Column::TenantId.eq(*tenant_id))
                            .add(presence::Column::UserId.gt(user.as_str())),
                    ),
            );
        }
        Ok(query
            .order_by_asc(presence::Column::TenantId)
            .order_by_asc(presence::Column::UserId)
            .limit(limit)
            .into_tuple()
            .all(self.reader())
            .await?)
    }

    /// What the store knows of each of `users` (in their order); `None` for a user who has
    /// never had a stream.
    pub async fn presence(
        &self,
        tenant_id: i64,
        users: &[String],
    ) -> Result<Vec<Option<Seen>>, StoreError> {
        let rows = presence::Entity::find()
            .filter(presence::Column::TenantId.eq(tenant_id))
            .filter(presence::Column::UserId.is_in(users.iter().cloned()))
            .all(self.reader())
            .await?;
        Ok(users
            .iter()
            .map(|user| {
                rows.iter().find(|r| &r.user_id == user).map(|r| Seen {
                    online: r.online,
                    last_seen_at: r.last_seen_at,
                })
            })
            .collect())
    }
}
