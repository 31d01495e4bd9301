//! What each tenant did per UTC day: events published, publishes refused by its rate
//! limit, events delivered to its streams. Counts are added, never set, so every node adds
//! its own and the rows hold the whole deployment's figures.

use std::collections::HashSet;

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{tenant, tenant_usage};
use super::{Store, StoreError};

/// Counts to add to one tenant's day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub published: i64,
    pub rate_limited: i64,
    pub delivered: i64,
    /// Events of users' streams their pages acknowledged (each event once per user).
    pub receipts_delivered: i64,
    /// Events marked seen.
    pub receipts_seen: i64,
    /// Inbox items that became read.
    pub receipts_read: i64,
    /// Fallbacks that sent `notification.unseen`.
    pub fallbacks_fired: i64,
}

impl UsageCounts {
    pub fn is_empty(&self) -> bool {
        *self == UsageCounts::default()
    }
}

/// A tenant's figures for a day and the month it is in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageReport {
    pub today: UsageCounts,
    pub published_this_month: i64,
    /// The last `REPORTED_DAYS` days (today's included) that have figures, oldest first.
    pub days: Vec<(i64, UsageCounts)>,
}

/// How many days a usage report lists.
pub const REPORTED_DAYS: i64 = 30;

/// The UTC day of a timestamp, as days since 1970-01-01.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// The first day of the UTC month `day` is in.
fn month_start(day: i64) -> i64 {
    use chrono::Datelike;
    let date = chrono::DateTime::from_timestamp(day * 86_400, 0).unwrap_or_default();
    day - i64::from(date.day0())
}

/// Adds `counts` to `tenant_id`'s `day`, inside the caller's transaction (the writer's, for
/// published events: they are counted with their commit) or on its own.
pub async fn add_usage(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    day: i64,
    counts: UsageCounts,
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let existing = |column: tenant_usage::Column, added: i64| {
        Expr::col((tenant_usage::Entity, column)).add(added)
    };
    tenant_usage::Entity::insert(tenant_usage::ActiveModel {
        tenant_id: Set(tenant_id),
        day: Set(day),
        published: Set(counts.published),
        rate_limited: Set(counts.rate_limited),
        delivered: Set(counts.delivered),
        receipts_delivered: Set(counts.receipts_delivered),
        receipts_seen: Set(counts.receipts_seen),
        receipts_read: Set(counts.receipts_read),
        fallbacks_fired: Set(counts.fallbacks_fired),
    })
    .on_conflict(
        OnConflict::columns([tenant_usage::Column::TenantId, tenant_usage::Column::Day])
            .values([
                (
                    tenant_usage::Column::Published,
                    existing(tenant_usage::Column::Published, counts.published),
                ),
                (
                    tenant_usage::Column::RateLimited,
                    existing(tenant_usage::Column::RateLimited, counts.rate_limited),
                ),
                (
                    tenant_usage::Column::Delivered,
                    existing(tenant_usage::Column::Delivered, counts.delivered),
                ),
                (
                    tenant_usage::Column::ReceiptsDelivered,
                    existing(
                        tenant_usage::Column::ReceiptsDelivered,
                        counts.receipts_delivered,
                    ),
                ),
                (
                    tenant_usage::Column::ReceiptsSeen,
                    existing(tenant_usage::Column::ReceiptsSeen, counts.receipts_seen),
                ),
                (
                    tenant_usage::Column::ReceiptsRead,
                    existing(tenant_usage::Column::ReceiptsRead, counts.receipts_read),
                ),
                (
                    tenant_usage::Column::FallbacksFired,
                    existing(tenant_usage::Column::FallbacksFired, counts.fallbacks_fired),
                ),
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Which of `ids` are tenants still (counts of a removed one go with it).
pub(super) async fn existing_tenants(
    db: &impl ConnectionTrait,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashSet<i64>, StoreError> {
    Ok(tenant::Entity::find()
        .select_only()
        .column(tenant::Column::Id)
        .filter(tenant::Column::Id.is_in(ids))
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Selects the sum of each of `columns` under its own name, as a BIGINT on both engines
/// (PostgreSQL's SUM of a BIGINT is a NUMERIC).
pub(super) fn summed<E: EntityTrait>(
    mut query: sea_orm::Select<E>,
    columns: &[&str],
) -> sea_orm::Select<E> {
    for column in columns {
        query = query.column_as(
            Expr::cust(format!("CAST(SUM({column}) AS BIGINT)")),
            *column,
        );
    }
    query
}

impl Store {
    /// Adds counts for several tenants, each to `day`, in one transaction. Counts of a
    /// tenant removed since they were taken go with it (its rows are gone too).
    pub async fn add_usage(
        &self,
        day: i64,
        counts: &[(i64, UsageCounts)],
    ) -> Result<(), StoreError> {
        if counts.iter().all(|(_, c)| c.is_empty()) {
            return Ok(());
        }
        let txn = self.begin_write().await?;
        let existing = existing_tenants(&txn, counts.iter().map(|(id, _)| *id)).await?;
        for (tenant_id, counts) in counts.iter().filter(|(id, _)| existing.contains(id)) {
            add_usage(&txn, *tenant_id, day, *counts).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Every tenant's daily figures summed, for the days from `first` to `last` that have
    /// any, oldest first.
    pub async fn daily_usage_of_all(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, UsageCounts)>, StoreError> {
        let query = tenant_usage::Entity::find()
            .select_only()
            .column(tenant_usage::Column::Day)
            .filter(tenant_usage::Column::Day.between(first, last))
            .group_by(tenant_usage::Column::Day)
            .order_by_asc(tenant_usage::Column::Day);
        let columns = [
            "published",
            "rate_limited",
            "delivered",
            "receipts_delivered",
            "receipts_seen",
            "receipts_read",
            "fallbacks_fired",
        ];
        type Row = (i64, i64, i64, i64, i64, i64, i64, i64);
        let rows: Vec<Row> = summed(query, &columns)
            .into_tuple()
            .all(self.reader())
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(day, published, rate_limited, delivered, r_delivered, r_seen, r_read, fired)| {
                    let counts = UsageCounts {
                        published,
                        rate_limited,
                        delivered,
                        receipts_delivered: r_delivered,
                        receipts_seen: r_seen,
                        receipts_read: r_read,
                        fallbacks_fired: fired,
                    };
                    (day, counts)
                },
            )
            .collect())
    }

    /// `tenant_id`'s figures for `day`, its month and the days before it.
    pub async fn usage(&self, tenant_id: i64, day: i64) -> Result<UsageReport, StoreError> {
        let first = std::cmp::min(month_start(day), day + 1 - REPORTED_DAYS);
        let rows = tenant_usage::Entity::find()
            .filter(tenant_usage::Column::TenantId.eq(tenant_id))
            .filter(tenant_usage::Column::Day.gte(first))
            .filter(tenant_usage::Column::Day.lte(day))
            .order_by_asc(tenant_usage::Column::Day)
            .all(self.reader())
            .await?;
        let mut report = UsageReport::default();
        for row in rows {
            if row.day >= month_start(day) {
                report.published_this_month += row.published;
            }
            let counts = UsageCounts {
                published: row.published,
                rate_limited: row.rate_limited,
                delivered: row.delivered,
                receipts_delivered: row.receipts_delivered,
                receipts_seen: row.receipts_seen,
                receipts_read: row.receipts_read,
                fallbacks_fired: row.fallbacks_fired,
            };
            if row.day == day {
                report.today = counts;
            }
            if row.day > day - REPORTED_DAYS {
                report.days.push((row.day, counts));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_are_utc() {
        // 2026-11-30T23:59:59.999Z and the next millisecond.
        let last_ms = 1_796_083_199_999;
        assert_eq!(day_of(last_ms) + 1, day_of(last_ms + 1));
        assert_eq!(month_start(day_of(last_ms)), day_of(last_ms) - 29);
        assert_eq!(month_start(day_of(last_ms + 1)), day_of(last_ms + 1));
    }
}
