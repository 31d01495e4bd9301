//! Presence in the store: who the deployment counts online, when each user's last stream
//! closed, and when a user without streams goes offline. Every transition is a conditional
//! write, so however many nodes see a user come and go, `user.online` and `user.offline`
//! are each written once, in the transaction that makes the transition.

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entities::presence;
use super::webhooks::{NewMessage, Recipients, enqueue};
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

impl Store {
    /// Applies a batch of node-level transitions in one transaction, a few statements per
    /// tenant whatever the batch's size: users who arrived are online (those who were
    /// offline get `user.online`; those within their grace stay, with nothing sent), and
    /// users whose last transition here was a departure start their grace (no other node
    /// streams to them: the caller has checked). Answers whether a message was written.
    pub async fn record_presence(
        &self,
        transitions: &[Transition],
        grace_ms: i64,
    ) -> Result<bool, StoreError> {
        let batch = Batch::of(transitions);
        if batch.is_empty() {
            return Ok(false);
        }
        let txn = self.begin_write().await?;
        let mut wrote = false;
        for (tenant_id, users) in &batch.arrived {
            for chunk in users.chunks(CHUNK) {
                let names = chunk.iter().map(|(user, _)| user.clone());
                // Back within their grace: online all along.
                presence::Entity::update_many()
                    .col_expr(
                        presence::Column::OfflineDueAt,
                        Expr::value(Option::<i64>::None),
                    )
                    .filter(presence::Column::TenantId.eq(*tenant_id))
                    .filter(presence::Column::UserId.is_in(names))
                    .filter(presence::Column::Online.eq(true))
                    .exec(&txn)
                    .await?;
                let came = came_online(&txn, *tenant_id, chunk).await?;
                let data: Vec<NewMessage> = chunk
                    .iter()
                    .filter(|(user, _)| came.contains(user))
                    .map(|(user, at)| {
                        serde_json::json!({"user": user, "at": format_ms(*at)}).into()
                    })
                    .collect();
                let ids = enqueue(
                    &txn,
                    *tenant_id,
                    MessageType::UserOnline,
                    &data,
                    Recipients::Subscribed,
                )
                .await?;
                wrote |= !ids.is_empty();
            }
        }
        for (tenant_id, users) in &batch.departed {
            for chunk in users.chunks(CHUNK) {
                // One time for the chunk: the latest of its departures (within a batch).
                let at = chunk.iter().map(|(_, at)| *at).max().unwrap_or_else(now_ms);
                presence::Entity::update_many()
                    .col_expr(presence::Column::LastSeenAt, Expr::value(at))
                    .col_expr(presence::Column::OfflineDueAt, Expr::value(at + grace_ms))
                    .filter(presence::Column::TenantId.eq(*tenant_id))
                    .filter(
                        presence::Column::UserId.is_in(chunk.iter().map(|(user, _)| user.clone())),
                    )
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

    /// Ends the grace of each user of `due` whose grace is still over: those marked gone
    /// (no stream anywhere) go offline, writing `user.offline`; the others stay online.
    /// A few statements per tenant. Answers whether a message was written.
    pub async fn settle_offline(
        &self,
        due: Vec<((i64, String), bool)>,
    ) -> Result<bool, StoreError> {
        let by_tenant = group_users(
            due.into_iter()
                .map(|((tenant_id, user), gone)| ((tenant_id, gone), user)),
        );
        let txn = self.begin_write().await?;
        let now = now_ms();
        let mut wrote = false;
        for ((tenant_id, gone), users) in by_tenant {
            for chunk in users.chunks(CHUNK) {
                let mut update = Query::update();
                update
                    .table(presence::Entity)
                    .value(presence::Column::OfflineDueAt, Option::<i64>::None)
                    .and_where(presence::Column::TenantId.eq(tenant_id))
                    .and_where(presence::Column::UserId.is_in(chunk.iter().cloned()))
                    .and_where(presence::Column::Online.eq(true))
                    .and_where(presence::Column::OfflineDueAt.lte(now));
                if !gone {
                    txn.execute_raw(txn.get_database_backend().build(&update))
                        .await?;
                    continue;
                }
                update.value(presence::Column::Online, false).returning(
                    Query::returning()
                        .columns([presence::Column::UserId, presence::Column::LastSeenAt]),
                );
                let went = txn
                    .query_all_raw(txn.get_database_backend().build(&update))
                    .await?;
                let mut data = Vec::with_capacity(went.len());
                for row in went {
                    let user: String = row.try_get("", "user_id")?;
                    let last_seen: Option<i64> = row.try_get("", "last_seen_at")?;
                    data.push(NewMessage::from(serde_json::json!({
                        "user": user, "at": format_ms(now), "last_seen_at": last_seen.map(format_ms),
                    })));
                }
                let ids = enqueue(
                    &txn,
                    tenant_id,
                    MessageType::UserOffline,
                    &data,
                    Recipients::Subscribed,
                )
                .await?;
                wrote |= !ids.is_empty();
            }
        }
        txn.commit().await?;
        Ok(wrote)
    }

    /// Starts the grace of every online user in `users` that is not in it already, from
    /// `at`: users a node that stopped had streams for.
    pub async fn presence_orphaned(
        &self,
        users: Vec<(i64, String)>,
        at: i64,
        grace_ms: i64,
    ) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let by_tenant = group_users(users);
        let txn = self.begin_write().await?;
        for (tenant_id, users) in by_tenant {
            for chunk in users.chunks(CHUNK) {
                presence::Entity::update_many()
                    .col_expr(presence::Column::LastSeenAt, Expr::value(at))
                    .col_expr(presence::Column::OfflineDueAt, Expr::value(at + grace_ms))
                    .filter(presence::Column::TenantId.eq(tenant_id))
                    .filter(presence::Column::UserId.is_in(chunk.iter().cloned()))
                    .filter(presence::Column::Online.eq(true))
                    .filter(presence::Column::OfflineDueAt.is_null())
                    .exec(&txn)
                    .await?;
            }
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

/// Users per statement (well under every engine's bound-parameter limit).
const CHUNK: usize = 500;

/// A batch of transitions reduced to what each user's come to: arrived (any arrival in the
/// batch — their stream may have closed since, which a departure later in it says), and
/// departed (the last transition a departure), each with its time, per tenant.
#[derive(Default)]
struct Batch {
    arrived: BTreeMap<i64, Vec<(String, i64)>>,
    departed: BTreeMap<i64, Vec<(String, i64)>>,
}

impl Batch {
    fn of(transitions: &[Transition]) -> Batch {
        let mut first_arrival: HashMap<(i64, &str), i64> = HashMap::new();
        let mut last: HashMap<(i64, &str), &Transition> = HashMap::new();
        for t in transitions {
            let key = (t.tenant_id, t.user.as_str());
            if t.arrived {
                first_arrival.entry(key).or_insert(t.at);
            }
            last.insert(key, t);
        }
        let mut batch = Batch::default();
        for ((tenant_id, user), at) in first_arrival {
            batch
                .arrived
                .entry(tenant_id)
                .or_default()
                .push((user.to_owned(), at));
        }
        for ((tenant_id, user), t) in last {
            if !t.arrived {
                batch
                    .departed
                    .entry(tenant_id)
                    .or_default()
                    .push((user.to_owned(), t.at));
            }
        }
        batch
    }

    fn is_empty(&self) -> bool {
        self.arrived.is_empty() && self.departed.is_empty()
    }
}

/// Of `users` (each with the time of their arrival), those who were offline or unknown
/// and are online now: one upsert that changes only rows that were offline.
async fn came_online(
    txn: &DatabaseTransaction,
    tenant_id: i64,
    users: &[(String, i64)],
) -> Result<HashSet<String>, StoreError> {
    let mut upsert = Query::insert();
    upsert.into_table(presence::Entity).columns([
        presence::Column::TenantId,
        presence::Column::UserId,
        presence::Column::Online,
        presence::Column::OnlineAt,
    ]);
    for (user, at) in users {
        upsert
            .values([
                tenant_id.into(),
                user.as_str().into(),
                true.into(),
                (*at).into(),
            ])
            .map_err(|e| StoreError::CommitFailed(e.to_string()))?;
    }
    upsert
        .on_conflict(
            OnConflict::columns([presence::Column::TenantId, presence::Column::UserId])
                .update_columns([presence::Column::Online, presence::Column::OnlineAt])
                .value(
                    presence::Column::OfflineDueAt,
                    Expr::value(Option::<i64>::None),
                )
                .action_and_where(Expr::col((presence::Entity, presence::Column::Online)).eq(false))
                .to_owned(),
        )
        .returning(Query::returning().column(presence::Column::UserId));
    let rows = txn
        .query_all_raw(txn.get_database_backend().build(&upsert))
        .await?;
    rows.iter()
        .map(|row| {
            row.try_get::<String>("", "user_id")
                .map_err(StoreError::from)
        })
        .collect()
}

/// Users grouped by `key` (their tenant, and whatever else decides what becomes of them),
/// in key order.
pub(crate) fn group_users<K: Ord>(
    users: impl IntoIterator<Item = (K, String)>,
) -> BTreeMap<K, Vec<String>> {
    let mut grouped: BTreeMap<K, Vec<String>> = BTreeMap::new();
    for (key, user) in users {
        grouped.entry(key).or_default().push(user);
    }
    grouped
}
