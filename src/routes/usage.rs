//! Usage: what a tenant holds and did — today, this month, each of the last 30 days and
//! 48 hours (UTC) — for the operator (`/admin/tenants/{slug}/usage`, and `/admin/usage` for
//! every tenant summed) and for the tenant's own backend (`/v1/usage`).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::{OperatorErrors, TenantRouteErrors};
use crate::auth::{Operator, Publisher};
use crate::domain::now_ms;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::hourly_usage::{HourCounts, REPORTED_HOURS, hour_of};
use crate::store::usage::{REPORTED_DAYS, UsageCounts, day_of};

/// What a tenant holds and did, days and months in UTC.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Streams open now.
    pub streams_open: u64,
    /// Events its log holds now.
    pub events_stored: u64,
    pub published: PublishedUsage,
    /// Publishes refused by its rate limit.
    pub rate_limited: DayUsage,
    /// Events handed to its streams.
    pub delivered: DayUsage,
    /// Facts its users' pages and inboxes told: events acknowledged delivered (once per
    /// user), marked seen, inbox items read.
    pub receipts: ReceiptUsage,
    /// Fallbacks that sent `notification.unseen`.
    pub fallbacks_fired: DayUsage,
    /// The last 30 days that have figures, oldest first (today's included).
    pub days: Vec<DayFigures>,
    /// The last 48 hours that have figures, oldest first (this hour's included).
    pub hours: Vec<HourFigures>,
}

/// Every tenant's figures summed.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentUsage {
    /// Tenants there are.
    pub tenants: u64,
    /// The last 30 days that have figures, oldest first (today's included).
    pub days: Vec<DayFigures>,
    /// The last 48 hours that have figures, oldest first (this hour's included).
    pub hours: Vec<HourFigures>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedUsage {
    pub today: u64,
    pub month: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayUsage {
    pub today: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptUsage {
    pub delivered: DayUsage,
    pub seen: DayUsage,
    pub read: DayUsage,
}

/// One UTC day's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayFigures {
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub day: String,
    pub published: u64,
    pub rate_limited: u64,
    pub delivered: u64,
    pub receipts_delivered: u64,
    pub receipts_seen: u64,
    pub receipts_read: u64,
    pub fallbacks_fired: u64,
    /// The most streams open at once in any hour of the day (see `HourFigures`).
    pub streams_open: u64,
}

/// One UTC hour's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourFigures {
    /// The hour's start, `YYYY-MM-DDTHH:00:00Z`.
    #[schema(format = DateTime)]
    pub hour: String,
    pub published: u64,
    pub delivered: u64,
    pub rate_limited: u64,
    pub fallbacks_fired: u64,
    /// The most streams open at once in the hour (with several nodes, the sum of each
    /// node's most).
    pub streams_open: u64,
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl DayFigures {
    /// The days that have figures or a peak of streams open (a quiet day with streams open
    /// has no daily row), oldest first.
    fn all(days: &[(i64, UsageCounts)], peaks: &[(i64, i64)]) -> Vec<DayFigures> {
        let mut merged: std::collections::BTreeMap<i64, (UsageCounts, i64)> = days
            .iter()
            .map(|(day, counts)| (*day, (*counts, 0)))
            .collect();
        for (day, peak) in peaks {
            merged.entry(*day).or_default().1 = *peak;
        }
        merged
            .into_iter()
            .map(|(day, (counts, peak))| DayFigures {
                streams_open: count(peak),
                ..DayFigures::of(&(day, counts))
            })
            .collect()
    }

    fn of((day, counts): &(i64, UsageCounts)) -> DayFigures {
        let date = chrono::DateTime::from_timestamp(day * 86_400, 0).unwrap_or_default();
        DayFigures {
            day: date.format("%Y-%m-%d").to_string(),
            published: count(counts.published),
            rate_limited: count(counts.rate_limited),
            delivered: count(counts.delivered),
            receipts_delivered: count(counts.receipts_delivered),
            receipts_seen: count(counts.receipts_seen),
            receipts_read: count(counts.receipts_read),
            fallbacks_fired: count(counts.fallbacks_fired),
            streams_open: 0,
        }
    }
}

impl HourFigures {
    fn of((hour, counts): &(i64, HourCounts)) -> HourFigures {
        let start = chrono::DateTime::from_timestamp(hour * 3_600, 0).unwrap_or_default();
        HourFigures {
            hour: start.format("%Y-%m-%dT%H:00:00Z").to_string(),
            published: count(counts.published),
            delivered: count(counts.delivered),
            rate_limited: count(counts.rate_limited),
            fallbacks_fired: count(counts.fallbacks_fired),
            streams_open: count(counts.streams_open),
        }
    }
}

#[utoipa::path(get, path = "/admin/tenants/{slug}/usage", tag = "operator",
    params(("slug" = String, Path, description = "the tenant's slug")),
    responses((status = 200, body = Usage), TenantRouteErrors),
    security(("admin_token" = [])))]
pub async fn tenant_usage(
    _: Operator,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tenant = state.tenant(&slug).await?;
    Ok(HttpResponse::Ok().json(usage(&state, &tenant).await?))
}

/// The calling tenant's usage, as the operator sees it.
#[utoipa::path(get, path = "/v1/usage", tag = "tenant backend",
    responses(
        (status = 200, body = Usage),
        (status = 401, description = "missing or wrong API key", body = crate::error::ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn own_usage(
    publisher: Publisher,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(usage(&state, &publisher.tenant).await?))
}

#[utoipa::path(get, path = "/admin/usage", tag = "operator",
    responses((status = 200, body = DeploymentUsage), OperatorErrors),
    security(("admin_token" = [])))]
pub async fn deployment_usage(
    _: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = flushed(&state).await?;
    let (today, this_hour) = (day_of(now), hour_of(now));
    let store = &state.store;
    let first_day = today + 1 - REPORTED_DAYS;
    let days = store.daily_usage_of_all(first_day, today).await?;
    let peaks = store.daily_stream_peaks(None, first_day, today).await?;
    let hours = store
        .hourly_usage(None, this_hour + 1 - REPORTED_HOURS, this_hour)
        .await?;
    Ok(HttpResponse::Ok().json(DeploymentUsage {
        tenants: store.count_tenants().await?,
        days: DayFigures::all(&days, &peaks),
        hours: hours.iter().map(HourFigures::of).collect(),
    }))
}

/// Adds this node's last second to the rows first, so its own figures are exact; answers
/// the time they were taken at.
async fn flushed(state: &AppState) -> Result<i64, ApiError> {
    let now = now_ms();
    state.usage.flush(&state.store, &state.hub, now).await?;
    Ok(now)
}

async fn usage(state: &AppState, tenant: &Tenant) -> Result<Usage, ApiError> {
    let now = flushed(state).await?;
    let (today, this_hour) = (day_of(now), hour_of(now));
    let report = state.store.usage(tenant.id, today).await?;
    let hours = state
        .store
        .hourly_usage(Some(tenant.id), this_hour + 1 - REPORTED_HOURS, this_hour)
        .await?;
    let peaks = state
        .store
        .daily_stream_peaks(Some(tenant.id), today + 1 - REPORTED_DAYS, today)
        .await?;
    let position = state.log_position(tenant).await?;
    let day = |value: i64| DayUsage {
        today: count(value),
    };
    Ok(Usage {
        streams_open: state.hub.tenant_streams(tenant.id).await,
        events_stored: count(position.next_seq - 1 - position.pruned_seq),
        published: PublishedUsage {
            today: count(report.today.published),
            month: count(report.published_this_month),
        },
        rate_limited: day(report.today.rate_limited),
        delivered: day(report.today.delivered),
        receipts: ReceiptUsage {
            delivered: day(report.today.receipts_delivered),
            seen: day(report.today.receipts_seen),
            read: day(report.today.receipts_read),
        },
        fallbacks_fired: day(report.today.fallbacks_fired),
        days: DayFigures::all(&report.days, &peaks),
        hours: hours.iter().map(HourFigures::of).collect(),
    })
}
