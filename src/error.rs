//! The one place where errors become HTTP answers.
//!
//! `ErrorCode` is the catalogue: every stable code Herald answers with, and its status
//! (docs/api.md's error table is checked against it). Every layer has its own error type —
//! `ValidationError`, `StoreError`, `HubError`, `AppendRejection` here, and `AuthError`
//! above them, converted where it is defined — and `ApiError` is what handlers return.
//! Every error body has the same shape: `{"error": {"code": "…", "message": "…"}}` (plus
//! `"index"` for a bad event in a batch). Herald's own faults are logged here and answered
//! with a 5xx that reveals nothing; a client's mistakes are only counted (`answered`, in
//! `/metrics`), never logged one by one.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::{Invalid, ValidationError};
use crate::hub::HubError;
use crate::store::StoreError;
use crate::store::log::AppendRejection;

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident;)*) => {
        /// Every error code Herald answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// The whole catalogue, in the order of docs/api.md's table.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the error body carries it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// Its place in `ALL`.
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// How often each code has been answered since start: client mistakes are counted for
/// `/metrics` instead of logged one by one, so a flood of bad requests cannot flood the log.
static ANSWERED: [AtomicU64; ErrorCode::ALL.len()] =
    [const { AtomicU64::new(0) }; ErrorCode::ALL.len()];

/// Connections actix-http refused before any route saw a request (a malformed head, one
/// that never finished): also counted, not logged.
static MALFORMED: AtomicU64 = AtomicU64::new(0);

pub fn count_malformed_request() {
    MALFORMED.fetch_add(1, Ordering::Relaxed);
}

pub fn malformed_requests() -> u64 {
    MALFORMED.load(Ordering::Relaxed)
}

/// Every code answered at least once, with its count.
pub fn answered() -> impl Iterator<Item = (ErrorCode, u64)> {
    ErrorCode::ALL
        .iter()
        .map(|code| (*code, ANSWERED[code.index()].load(Ordering::Relaxed)))
        .filter(|(_, count)| *count > 0)
}

error_codes! {
    InvalidJson = "invalid_json", BAD_REQUEST;
    InvalidQuery = "invalid_query", BAD_REQUEST;
    InvalidCursor = "invalid_cursor", BAD_REQUEST;
    InvalidLimit = "invalid_limit", BAD_REQUEST;
    InvalidIdempotencyKey = "invalid_idempotency_key", BAD_REQUEST;
    MissingCredentials = "missing_credentials", UNAUTHORIZED;
    InvalidAdminToken = "invalid_admin_token", UNAUTHORIZED;
    InvalidApiKey = "invalid_api_key", UNAUTHORIZED;
    InvalidToken = "invalid_token", UNAUTHORIZED;
    TopicNotAllowed = "topic_not_allowed", FORBIDDEN;
    OriginNotAllowed = "origin_not_allowed", FORBIDDEN;
    NotFound = "not_found", NOT_FOUND;
    TenantNotFound = "tenant_not_found", NOT_FOUND;
    ApiKeyNotFound = "api_key_not_found", NOT_FOUND;
    SigningKeyNotFound = "signing_key_not_found", NOT_FOUND;
    WebhookNotFound = "webhook_not_found", NOT_FOUND;
    MessageNotFound = "message_not_found", NOT_FOUND;
    EventNotFound = "event_not_found", NOT_FOUND;
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED;
    SlugTaken = "slug_taken", CONFLICT;
    IdempotencyKeyInFlight = "idempotency_key_in_flight", CONFLICT;
    BodyTimeout = "body_timeout", REQUEST_TIMEOUT;
    CursorExpired = "cursor_expired", GONE;
    BodyTooLarge = "body_too_large", PAYLOAD_TOO_LARGE;
    DataTooLarge = "data_too_large", PAYLOAD_TOO_LARGE;
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    InvalidBody = "invalid_body", UNPROCESSABLE_ENTITY;
    EmptyBatch = "empty_batch", UNPROCESSABLE_ENTITY;
    TooManyEvents = "too_many_events", UNPROCESSABLE_ENTITY;
    TooManyRecipients = "too_many_recipients", UNPROCESSABLE_ENTITY;
    InvalidTarget = "invalid_target", UNPROCESSABLE_ENTITY;
    InvalidUser = "invalid_user", UNPROCESSABLE_ENTITY;
    InvalidTopic = "invalid_topic", UNPROCESSABLE_ENTITY;
    InvalidType = "invalid_type", UNPROCESSABLE_ENTITY;
    InvalidSlug = "invalid_slug", UNPROCESSABLE_ENTITY;
    InvalidOrigin = "invalid_origin", UNPROCESSABLE_ENTITY;
    InvalidRetention = "invalid_retention", UNPROCESSABLE_ENTITY;
    InvalidLimits = "invalid_limits", UNPROCESSABLE_ENTITY;
    InvalidInbox = "invalid_inbox", UNPROCESSABLE_ENTITY;
    InvalidWebhookUrl = "invalid_webhook_url", UNPROCESSABLE_ENTITY;
    InvalidWebhookEvents = "invalid_webhook_events", UNPROCESSABLE_ENTITY;
    InvalidFallback = "invalid_fallback", UNPROCESSABLE_ENTITY;
    InvalidReceipts = "invalid_receipts", UNPROCESSABLE_ENTITY;
    TooManyWebhooks = "too_many_webhooks", UNPROCESSABLE_ENTITY;
    InvalidName = "invalid_name", UNPROCESSABLE_ENTITY;
    InvalidAlg = "invalid_alg", UNPROCESSABLE_ENTITY;
    InvalidPublicKey = "invalid_public_key", UNPROCESSABLE_ENTITY;
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY;
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    TooManyStreams = "too_many_streams", TOO_MANY_REQUESTS;
    InternalError = "internal_error", INTERNAL_SERVER_ERROR;
    ShuttingDown = "shutting_down", SERVICE_UNAVAILABLE;
    StorageFull = "storage_full", SERVICE_UNAVAILABLE;
    StorageUnavailable = "storage_unavailable", SERVICE_UNAVAILABLE;
}

/// `Retry-After` on `storage_full`: space comes back when an operator acts, not at once.
pub const STORAGE_FULL_RETRY_SECS: u32 = 30;
/// `Retry-After` on `storage_unavailable`: a restart or failover takes seconds.
pub const STORAGE_UNAVAILABLE_RETRY_SECS: u32 = 5;

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case; see the error table in docs/api.md.
    pub code: &'static str,
    pub message: String,
    /// For a batch: the index of the first bad event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub index: Option<usize>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            index: None,
        }
    }

    pub fn tenant_not_found(slug: &str) -> Self {
        ApiError::new(ErrorCode::TenantNotFound, format!("no tenant `{slug}`"))
    }

    /// A fault of Herald's own: logged in full, answered without details.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new(
            ErrorCode::InternalError,
            "Herald failed to handle this request; it has been logged",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        ANSWERED[self.code.index()].fetch_add(1, Ordering::Relaxed);
        let mut response = HttpResponse::build(self.code.status());
        match self.code {
            // What is left of the body may still trickle in: the connection cannot be reused.
            ErrorCode::BodyTimeout => {
                response.force_close();
            }
            ErrorCode::StorageFull => {
                response.insert_header((RETRY_AFTER, STORAGE_FULL_RETRY_SECS));
            }
            ErrorCode::StorageUnavailable => {
                response.insert_header((RETRY_AFTER, STORAGE_UNAVAILABLE_RETRY_SECS));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: self.message.clone(),
                index: self.index,
            },
        })
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let code = match error.kind {
            Invalid::Body => ErrorCode::InvalidBody,
            Invalid::EmptyBatch => ErrorCode::EmptyBatch,
            Invalid::TooManyEvents => ErrorCode::TooManyEvents,
            Invalid::TooManyRecipients => ErrorCode::TooManyRecipients,
            Invalid::Target => ErrorCode::InvalidTarget,
            Invalid::User => ErrorCode::InvalidUser,
            Invalid::Topic => ErrorCode::InvalidTopic,
            Invalid::EventType => ErrorCode::InvalidType,
            Invalid::DataTooLarge => ErrorCode::DataTooLarge,
            Invalid::Slug => ErrorCode::InvalidSlug,
            Invalid::Origin => ErrorCode::InvalidOrigin,
            Invalid::Retention => ErrorCode::InvalidRetention,
            Invalid::Name => ErrorCode::InvalidName,
            Invalid::Algorithm => ErrorCode::InvalidAlg,
            Invalid::PublicKey => ErrorCode::InvalidPublicKey,
            Invalid::Cursor => ErrorCode::InvalidCursor,
            Invalid::Limit => ErrorCode::InvalidLimit,
            Invalid::IdempotencyKey => ErrorCode::InvalidIdempotencyKey,
            Invalid::Limits => ErrorCode::InvalidLimits,
            Invalid::Inbox => ErrorCode::InvalidInbox,
            Invalid::WebhookUrl => ErrorCode::InvalidWebhookUrl,
            Invalid::WebhookEvents => ErrorCode::InvalidWebhookEvents,
            Invalid::Fallback => ErrorCode::InvalidFallback,
            Invalid::Receipts => ErrorCode::InvalidReceipts,
        };
        ApiError {
            code,
            message: error.message,
            index: error.index,
        }
    }
}

impl From<HubError> for ApiError {
    fn from(error: HubError) -> Self {
        match error {
            HubError::TooManyForUser | HubError::TooManyForTenant => {
                ApiError::new(ErrorCode::TooManyStreams, error.to_string())
            }
            HubError::Stopped => ApiError::new(
                ErrorCode::ShuttingDown,
                "Herald is shutting down; reconnect shortly",
            ),
            HubError::TenantGone => ApiError::new(ErrorCode::TenantNotFound, "no such tenant"),
            HubError::Store(error) => ApiError::from(error),
        }
    }
}

impl From<AppendRejection> for ApiError {
    fn from(rejection: AppendRejection) -> Self {
        match rejection {
            AppendRejection::KeyReused => ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different body",
            ),
            AppendRejection::InFlight => ApiError::new(
                ErrorCode::IdempotencyKeyInFlight,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ),
            // The tenant, and so the key that authenticated the request, is gone.
            AppendRejection::TenantGone => ApiError::new(
                ErrorCode::InvalidApiKey,
                "the API key is unknown or revoked",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            // Retrying later is the answer, as for any unavailable dependency. Still
            // Herald's side, so logged.
            StoreError::Full(_) => {
                tracing::error!(%error, "the storage is full");
                ApiError::new(
                    ErrorCode::StorageFull,
                    "Herald's storage is full: nothing was acknowledged; retry later",
                )
            }
            StoreError::Unavailable(_) => {
                tracing::error!(%error, "the storage is unavailable");
                ApiError::new(
                    ErrorCode::StorageUnavailable,
                    "Herald's storage is not answering or failing: nothing was acknowledged; retry shortly",
                )
            }
            _ => ApiError::internal(&error),
        }
    }
}

pub fn path_error(error: actix_web::error::PathError) -> ApiError {
    ApiError::new(ErrorCode::NotFound, error.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// docs/api.md's error table: one row per status, its codes in backticks.
    fn documented() -> BTreeMap<String, u16> {
        let doc = include_str!("../docs/api.md");
        let table = doc
            .split("| status | codes |")
            .nth(1)
            .expect("docs/api.md has the error table");
        let mut codes = BTreeMap::new();
        for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
            let mut cells = row.split('|').skip(1);
            let status: u16 = cells.next().unwrap_or("").trim().parse().expect("a status");
            for code in cells.next().unwrap_or("").split('`').skip(1).step_by(2) {
                codes.insert(code.to_owned(), status);
            }
        }
        codes
    }

    #[test]
    fn the_documented_error_table_is_the_catalogue() {
        let catalogue: BTreeMap<String, u16> = ErrorCode::ALL
            .iter()
            .map(|code| (code.as_str().to_owned(), code.status().as_u16()))
            .collect();
        assert_eq!(documented(), catalogue);
    }
}
