//! `POST /v1/events`: a tenant backend publishes one event or a batch.

mod body;
mod limit;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::{Instrument, Span};
use utoipa::ToSchema;

use crate::auth::Publisher;
use crate::config::LimitSettings;
use crate::domain::ValidationError;
use crate::domain::event::PublishedEvent;
use crate::domain::limits::EffectiveLimits;
use crate::domain::log::LoggedEvent;
use crate::domain::names::{IdempotencyKey, IdempotencyKeyText};
use crate::error::{ApiError, ErrorBody};
use crate::limits::{Admission, Rate};
use crate::routes::json;
use crate::state::AppState;
use crate::store::log::{AppendOutcome, IdempotencyClaim};
use crate::tail::Notice;
use crate::traces;

pub use body::{Batch, BroadcastFlag, EventIn, PublishBody, To};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// One published event per recipient stream, in order.
#[derive(Serialize, ToSchema)]
pub struct PublishAnswer {
    pub events: Vec<PublishedEvent>,
}

/// Answers 201 only after the events are committed: an acknowledged event is durable.
#[utoipa::path(post, path = "/v1/events", tag = "tenant backend",
    request_body = PublishBody,
    params(
        ("Idempotency-Key" = Option<IdempotencyKeyText>, Header, description = "retry safely for 24 h"),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context: the publish joins the caller's trace (a malformed one is ignored)"),
    ),
    responses(
        (status = 201, body = PublishAnswer, headers(
            ("Idempotent-Replayed" = String, description = "true when this is the first answer again"),
            ("RateLimit-Policy" = String, description = "the tenant's bucket: `\"publish\";q=<burst>;w=<seconds to fill>`"),
            ("RateLimit" = String, description = "`\"publish\";r=<events that fit now>;t=<seconds until full>`"),
        )),
        (status = 400, body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked API key", body = ErrorBody),
        (status = 409, description = "same Idempotency-Key in flight", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "the tenant's rate limit: nothing was stored; retry after `Retry-After` seconds", body = ErrorBody, headers(
            ("Retry-After" = String, description = "whole seconds"),
            ("RateLimit-Policy" = String),
            ("RateLimit" = String),
        )),
    ),
    security(("api_key" = [])))]
pub async fn publish(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let trace = traces::publish(request.headers());
    let answer = async {
        let publisher = Publisher::of(&request).instrument(traces::auth()).await?;
        let body = json::json_object(&request, payload, &state.settings.server).await?;
        append(&publisher, &state, &request, &body, &trace).await
    }
    .instrument(trace.clone())
    .await;
    let status = match &answer {
        Ok(response) => response.status(),
        Err(error) => error.status_code(),
    };
    traces::answered(&trace, status);
    answer
}

async fn append(
    publisher: &Publisher,
    state: &AppState,
    request: &HttpRequest,
    body: &Value,
    trace: &Span,
) -> Result<HttpResponse, ApiError> {
    let tenant = &publisher.tenant;
    let limits = tenant.limits.effective(&state.settings.tenant_defaults);
    let events = PublishBody::parse(body, &tenant_limits(&state.settings.limits, &limits))?;
    let claim = idempotency_claim(request, body)?;
    // The bucket is asked last, once the publish is known to be valid: a refused or
    // invalid publish takes nothing from it, and a 429 leaves the Idempotency-Key unused.
    let rate = Rate::of(&limits);
    let n = events.len() as u64;
    if !trace.is_disabled() {
        trace.record("herald.tenant", tenant.slug.as_str());
        trace.record("herald.events", n);
    }
    let admission = state
        .budget
        .admit(tenant.id, rate, n)
        .instrument(traces::limits())
        .await;
    let (remaining, full_in) = match admission {
        Admission::Admitted { remaining, full_in } => (remaining, full_in),
        Admission::Refused { retry_after } => {
            state.usage.rate_limited(tenant.id, &tenant.slug);
            let notice = Notice::RateLimited {
                events: n,
                retry_after_secs: limit::retry_after_secs(retry_after),
            };
            state.hub.tail().notice(tenant.id, notice);
            return Ok(limit::refused(rate, n, retry_after));
        }
        Admission::TooLarge => return Err(limit::never_fits(rate, n)),
    };
    let mut answer = HttpResponse::Created();
    for header in limit::rate_headers(rate, remaining, full_in) {
        answer.insert_header(header);
    }
    match state.log.append(tenant.id, events, claim, trace).await? {
        AppendOutcome::Committed(events) => {
            state
                .usage
                .published(tenant.id, &tenant.slug, events.len() as u64);
            let events = events.iter().map(LoggedEvent::published).collect();
            Ok(answer.json(PublishAnswer { events }))
        }
        AppendOutcome::Replayed(receipts) => Ok(answer
            .insert_header(("Idempotent-Replayed", "true"))
            .json(PublishAnswer { events: receipts })),
        AppendOutcome::Rejected(rejection) => Err(rejection.into()),
    }
}

/// The server's publish limits with the tenant's own event size.
fn tenant_limits(server: &LimitSettings, tenant: &EffectiveLimits) -> LimitSettings {
    let data = usize::try_from(tenant.max_event_data_bytes).unwrap_or(usize::MAX);
    LimitSettings {
        max_event_data_bytes: data.min(server.max_event_data_bytes),
        ..server.clone()
    }
}

/// The request's `Idempotency-Key` with a digest of its body. The digest is taken over the
/// parsed JSON written back compactly with sorted keys, so two bodies that differ only in
/// spacing or key order count as the same body.
fn idempotency_claim(
    request: &HttpRequest,
    body: &Value,
) -> Result<Option<IdempotencyClaim>, ValidationError> {
    let Some(header) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = IdempotencyKey::parse(header.to_str().unwrap_or_default())?;
    let request_hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    Ok(Some(IdempotencyClaim { key, request_hash }))
}
