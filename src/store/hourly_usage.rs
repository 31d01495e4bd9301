//! What each tenant did per UTC hour, for charts of the last two days: events published
//! and delivered, publishes refused by the rate limit, fallbacks fired, and streams open.
//!
//! Every node adds what it counted in memory once a second (`limits::usage`), so a row
//! holds the deployment's figures. The daily rows (`usage`) stay the exact record — the
//! published count there is taken inside each commit; the hourly ones are for reading
//! trends and may miss a killed node's last second. `streams_open` is added too: each node
//! adds what its own most streams open at once in the hour grew by, so the row holds the
//! sum of the nodes' peaks.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::usage_hour;
use super::usage::{existing_tenants, summed};
use super::{Store, StoreError};

/// Counts to add to one tenant's hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCounts {
    pub published: i64,
    pub delivered: i64,
    pub rate_limited: i64,
    pub fallbacks_fired: i64,
    /// What the node's peak of open streams in the hour grew by since it last added it.
    pub streams_open: i64,
}

impl HourCounts {
    pub fn is_empty(&self) -> bool {
        *self == HourCounts::default()
    }

    pub fn add(&mut self, other: &HourCounts) {
        self.published += other.published;
        self.delivered += other.delivered;
        self.rate_limited += other.rate_limited;
        self.fallbacks_fired += other.fallbacks_fired;
        self.streams_open += other.streams_open;
    }
}

/// How many hours a report lists, and how long hourly rows are kept (long enough for the
/// daily peaks of streams open over the days a report lists).
pub const REPORTED_HOURS: i64 = 48;
pub const KEPT_HOURS: i64 = 31 * 24;

/// The UTC hour of a timestamp, as hours since 1970-01-01.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(3_600_000)
}

impl Store {
    /// Adds counts for several tenants to `hour`, in one transaction. Counts of a tenant
    /// removed since they were taken go with it.
    pub async fn add_hourly_usage(
        &self,
        hour: i64,
        counts: &[(i64, HourCounts)],
    ) -> Result<(), StoreError> {
        if counts.iter().all(|(_, c)| c.is_empty()) {
            return Ok(());
        }
        let added = |column: usage_hour::Column, value: i64| {
            (column, Expr::col((usage_hour::Entity, column)).add(value))
        };
        let txn = self.begin_write().await?;
        let existing = existing_tenants(&txn, counts.iter().map(|(id, _)| *id)).await?;
        for (tenant_id, c) in counts
            .iter()
            .filter(|(id, c)| existing.contains(id) && !c.is_empty())
        {
            usage_hour::Entity::insert(usage_hour::ActiveModel {
                tenant_id: Set(*tenant_id),
                hour: Set(hour),
                published: Set(c.published),
                delivered: Set(c.delivered),
                rate_limited: Set(c.rate_limited),
                fallbacks_fired: Set(c.fallbacks_fired),
                streams_open: Set(c.streams_open),
            })
            .on_conflict(
                OnConflict::columns([usage_hour::Column::TenantId, usage_hour::Column::Hour])
                    .values([
                        added(usage_hour::Column::Published, c.published),
                        added(usage_hour::Column::Delivered, c.delivered),
                        added(usage_hour::Column::RateLimited, c.rate_limited),
                        added(usage_hour::Column::FallbacksFired, c.fallbacks_fired),
                        added(usage_hour::Column::StreamsOpen, c.streams_open),
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The hours from `first` to `last` that have figures, oldest first: one tenant's, or
    /// (`None`) every tenant's summed.
    pub async fn hourly_usage(
        &self,
        tenant_id: Option<i64>,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, HourCounts)>, StoreError> {
        let mut query = usage_hour::Entity::find()
            .select_only()
            .column(usage_hour::Column::Hour)
            .filter(usage_hour::Column::Hour.between(first, last))
            .group_by(usage_hour::Column::Hour)
            .order_by_asc(usage_hour::Column::Hour);
        if let Some(tenant_id) = tenant_id {
            query = query.filter(usage_hour::Column::TenantId.eq(tenant_id));
        }
        let columns = [
            "published",
            "delivered",
            "rate_limited",
            "fallbacks_fired",
            "streams_open",
        ];
        let rows: Vec<(i64, i64, i64, i64, i64, i64)> = summed(query, &columns)
            .into_tuple()
            .all(self.reader())
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(hour, published, delivered, rate_limited, fallbacks_fired, streams_open)| {
                    let counts = HourCounts {
                        published,
                        delivered,
                        rate_limited,
                        fallbacks_fired,
                        streams_open,
                    };
                    (hour, counts)
                },
            )
            .collect())
    }

    /// The most streams open at once in any hour of each day from `first` to `last` that has
    /// figures: one tenant's, or (`None`) the deployment's (its hours summed over tenants).
    pub async fn daily_stream_peaks(
        &self,
        tenant_id: Option<i64>,
        first: i64,
        last: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let tenant = match tenant_id {
            Some(_) => "AND tenant_id = $3",
            None => "",
        };
        let sql = format!(
            "SELECT hour / 24 AS day, CAST(MAX(streams) AS BIGINT) AS peak FROM \
               (SELECT hour, SUM(streams_open) AS streams FROM usage_hours \
                WHERE hour >= $1 AND hour < $2 {tenant} GROUP BY hour) AS hours \
             GROUP BY hour / 24 ORDER BY day"
        );
        let mut values: Vec<sea_orm::Value> = vec![(first * 24).into(), ((last + 1) * 24).into()];
        values.extend(tenant_id.map(Into::into));
        let backend = self.reader().get_database_backend();
        let rows = self
            .reader()
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("", "day")?, row.try_get("", "peak")?)))
            .collect()
    }

    /// Removes hourly rows older than `KEPT_HOURS` before `now_hour`.
    pub async fn prune_hourly_usage(&self, now_hour: i64) -> Result<u64, StoreError> {
        let removed = usage_hour::Entity::delete_many()
            .filter(usage_hour::Column::Hour.lt(now_hour - KEPT_HOURS))
            .exec(self.writer())
            .await?;
        Ok(removed.rows_affected)
    }
}
