//! Reading the log: a stream's events after a position (replay and history), a tenant's
//! events in a range (what a node missed), and where each tenant's log stands. On SQLite
//! the first two — what every stream open and replay asks — run on the store's reader
//! threads (`sqlite_reads`).

use rusqlite::{Connection, OptionalExtension};
use sea_orm::sea_query::{Alias, Asterisk, Order, Query, UnionType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};

use crate::domain::event::{EventId, Target};
use crate::domain::log::{LogPosition, LoggedEvent};
use crate::domain::names::{TopicList, UserId};
use crate::store::entities::{event, tenant};
use crate::store::{Store, StoreError};

/// Which streams a reader sees: a user's own events (if any user), the tenant's
/// broadcasts, and the named topics.
#[derive(Debug, Clone, Default)]
pub struct StreamSelector {
    pub user: Option<UserId>,
    pub topics: TopicList,
}

/// Which of a stream's events a read takes: those after a seq, oldest first (a replay, a
/// history page), or those before one, newest first (the latest events, paged back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqRange {
    After(i64),
    Before(i64),
}

impl SeqRange {
    /// The bound on `seq` and the order of the read, as SQL.
    fn sql(self) -> (&'static str, &'static str, i64) {
        match self {
            SeqRange::After(seq) => (">", "ASC", seq),
            SeqRange::Before(seq) => ("<", "DESC", seq),
        }
    }
}

impl StreamSelector {
    fn targets(&self) -> Vec<Target> {
        let mut targets = vec![Target::Broadcast];
        targets.extend(self.user.iter().cloned().map(Target::User));
        targets.extend(self.topics.iter().cloned().map(Target::Topic));
        targets
    }
}

/// A stored row as a `LoggedEvent` of `tenant_id`'s log.
fn logged_event(row: event::Model, tenant_id: i64, epoch: &str) -> Result<LoggedEvent, StoreError> {
    let target = Target::from_columns(&row.target_kind, &row.target).ok_or_else(|| {
        StoreError::Corrupt(format!("event {} target kind {}", row.seq, row.target_kind))
    })?;
    Ok(LoggedEvent {
        tenant_id,
        id: EventId {
            epoch: epoch.to_owned(),
            seq: row.seq,
        },
        target,
        event_type: row.event_type,
        data: row.data,
        created_at: row.created_at,
        inbox: row.inbox_ordinal.is_some(),
        trace: None,
    })
}

impl Store {
    pub async fn log_position(&self, tenant_id: i64) -> Result<Option<LogPosition>, StoreError> {
        if let Some(reads) = self.sqlite_reads() {
            return reads.run_here(|db| log_position(db, tenant_id));
        }
        Ok(tenant::Entity::find_by_id(tenant_id)
            .one(self.reader())
            .await?
            .map(|t| LogPosition {
                epoch: t.epoch,
                next_seq: t.next_seq,
                pruned_seq: t.pruned_seq,
            }))
    }

    /// The events `selector` sees with a seq above `after_seq`, oldest first, at most
    /// `limit`. One statement: each stream (the broadcasts, the user's, each topic) is read
    /// through the replay index with its own limit, and the union is ordered and cut, so a
    /// rare user in a busy tenant costs as little as a busy one and 64 topics cost one
    /// round trip.
    ///
    /// The read stops at the head the log had *before* it: below it every event is
    /// committed, so a reader that moves on past the last event it got can never have
    /// missed one committed before it (the gap the resume test catches).
    pub async fn read_after(
        &self,
        tenant_id: i64,
        epoch: &str,
        selector: &StreamSelector,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        self.read_stream(
            tenant_id,
            epoch,
            selector,
            SeqRange::After(after_seq),
            limit,
        )
        .await
    }

    /// As `read_after`, for either range: `SeqRange::Before` reads the events below a seq,
    /// newest first.
    pub async fn read_stream(
        &self,
        tenant_id: i64,
        epoch: &str,
        selector: &StreamSelector,
        range: SeqRange,
        limit: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        if let Some(reads) = self.sqlite_reads() {
            let (epoch, targets) = (epoch.to_owned(), selector.targets());
            return reads
                .run(move |db| read_stream(db, tenant_id, &epoch, &targets, range, limit))
                .await;
        }
        let Some(position) = self.log_position(tenant_id).await? else {
            return Ok(Vec::new());
        };
        let head = position.next_seq - 1;
        let (bound, order) = match range {
            SeqRange::After(seq) => (event::Column::Seq.gt(seq), Order::Asc),
            SeqRange::Before(seq) => (event::Column::Seq.lt(seq), Order::Desc),
        };
        let stream = |index: usize, target: &Target| {
            let read = event::Entity::find()
                .filter(event::Column::TenantId.eq(tenant_id))
                .filter(event::Column::TargetKind.eq(target.kind()))
                .filter(event::Column::Target.eq(target.name()))
                .filter(bound.clone())
                .filter(event::Column::Seq.lte(head))
                .order_by(event::Column::Seq, order.clone())
                .limit(limit)
                .into_query();
            Query::select()
                .column(Asterisk)
                .from_subquery(read, Alias::new(format!("stream{index}")))
                .to_owned()
        };
        let targets = selector.targets();
        let mut union = stream(0, &targets[0]);
        for (index, target) in targets.iter().enumerate().skip(1) {
            union.union(UnionType::All, stream(index, target));
        }
        union.order_by(Alias::new("seq"), order).limit(limit);
        let statement = self.backend().build(&union);
        event::Entity::find()
            .from_raw_sql(statement)
            .all(self.reader())
            .await?
            .into_iter()
            .map(|row| logged_event(row, tenant_id, epoch))
            .collect()
    }

    /// Every event of a tenant with `after_seq < seq <= up_to_seq`, whatever its target,
    /// oldest first, at most `limit`: what a node missed between two it has seen.
    pub async fn read_range(
        &self,
        tenant_id: i64,
        epoch: &str,
        after_seq: i64,
        up_to_seq: i64,
        limit: u64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant_id))
            .filter(event::Column::Seq.gt(after_seq))
            .filter(event::Column::Seq.lte(up_to_seq))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(self.reader())
            .await?
            .into_iter()
            .map(|row| logged_event(row, tenant_id, epoch))
            .collect()
    }

    /// Every tenant's id, epoch and last committed seq.
    pub async fn log_heads(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        Ok(tenant::Entity::find()
            .all(self.reader())
            .await?
            .into_iter()
            .map(|t| (t.id, t.epoch, t.next_seq - 1))
            .collect())
    }
}

/// `Store::log_position` on the SQLite reader's connection.
fn log_position(db: &Connection, tenant_id: i64) -> Result<Option<LogPosition>, StoreError> {
    Ok(db
        .prepare_cached("SELECT epoch, next_seq, pruned_seq FROM tenants WHERE id = ?1")?
        .query_row([tenant_id], |row| {
            Ok(LogPosition {
                epoch: row.get(0)?,
                next_seq: row.get(1)?,
                pruned_seq: row.get(2)?,
            })
        })
        .optional()?)
}

/// `Store::read_after` on the SQLite reader's connection: the same statement, each
/// target's arm through the replay index with its own limit.
fn read_stream(
    db: &Connection,
    tenant_id: i64,
    epoch: &str,
    targets: &[Target],
    range: SeqRange,
    limit: u64,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let Some(position) = log_position(db, tenant_id)? else {
        return Ok(Vec::new());
    };
    let head = position.next_seq - 1;
    let (bound, order, seq) = range.sql();
    let arm = |n: usize| {
        format!(
            "SELECT * FROM (SELECT seq, target_kind, target, event_type, data, created_at, \
             inbox_ordinal FROM events WHERE tenant_id = ?1 AND target_kind = ?{} AND target = ?{} \
             AND seq {bound} ?2 AND seq <= ?3 ORDER BY seq {order} LIMIT ?4)",
            5 + 2 * n,
            6 + 2 * n
        )
    };
    let arms: Vec<String> = (0..targets.len()).map(arm).collect();
    let sql = format!("{} ORDER BY seq {order} LIMIT ?4", arms.join(" UNION ALL "));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut values: Vec<rusqlite::types::Value> =
        vec![tenant_id.into(), seq.into(), head.into(), limit.into()];
    for target in targets {
        values.push(target.kind().to_owned().into());
        values.push(target.name().to_owned().into());
    }
    let mut statement = db.prepare_cached(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
        Ok(event::Model {
            tenant_id,
            seq: row.get(0)?,
            target_kind: row.get(1)?,
            target: row.get(2)?,
            event_type: row.get(3)?,
            data: row.get(4)?,
            created_at: row.get(5)?,
            inbox_ordinal: row.get(6)?,
        })
    })?;
    let mut events = Vec::new();
    for row in rows {
        events.push(logged_event(row?, tenant_id, epoch)?);
    }
    Ok(events)
}
