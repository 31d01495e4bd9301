//! The one place where errors become HTTP answers.
//!
//! Every layer has its own error type (`ValidationError`, `StoreError`, `HubError`, and
//! `AuthError` above them, converted where it is defined); `ApiError` is what handlers
//! return, and the `From` conversions decide the status and the stable error code for each. Every error body has the same shape:
//! `{"error": {"code": "…", "message": "…"}}` (plus `"index"` for a bad event in a batch).
//! Herald's own faults are logged here and answered with a 5xx that reveals nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::{Invalid, ValidationError};
use crate::hub::HubError;
use crate::store::StoreError;

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case; see the README's error table.
    pub code: &'static str,
    pub message: String,
    /// For a batch: the index of the first bad event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub index: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            index: None,
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn tenant_not_found(slug: &str) -> Self {
        ApiError::not_found("tenant_not_found", format!("no tenant `{slug}`"))
    }

    /// A fault of Herald's own: logged in full, answered without details.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Herald failed to handle this request; it has been logged",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                index: self.index,
            },
        })
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
        let (status, code) = match error.kind {
            Invalid::Body => (unprocessable, "invalid_body"),
            Invalid::EmptyBatch => (unprocessable, "empty_batch"),
            Invalid::TooManyEvents => (unprocessable, "too_many_events"),
            Invalid::TooManyRecipients => (unprocessable, "too_many_recipients"),
            Invalid::Target => (unprocessable, "invalid_target"),
            Invalid::User => (unprocessable, "invalid_user"),
            Invalid::Topic => (unprocessable, "invalid_topic"),
            Invalid::EventType => (unprocessable, "invalid_type"),
            Invalid::DataTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "data_too_large"),
            Invalid::Slug => (unprocessable, "invalid_slug"),
            Invalid::Origin => (unprocessable, "invalid_origin"),
            Invalid::Retention => (unprocessable, "invalid_retention"),
            Invalid::Name => (unprocessable, "invalid_name"),
            Invalid::Algorithm => (unprocessable, "invalid_alg"),
            Invalid::PublicKey => (unprocessable, "invalid_public_key"),
            Invalid::Cursor => (StatusCode::BAD_REQUEST, "invalid_cursor"),
            Invalid::Limit => (StatusCode::BAD_REQUEST, "invalid_limit"),
            Invalid::IdempotencyKey => (StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
        };
        ApiError {
            status,
            code,
            message: error.message,
            index: error.index,
        }
    }
}

impl From<HubError> for ApiError {
    fn from(error: HubError) -> Self {
        match error {
            HubError::TooManyForUser | HubError::TooManyForTenant => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                error.to_string(),
            ),
            HubError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "Herald is shutting down; reconnect shortly",
            ),
            HubError::TenantGone => ApiError::not_found("tenant_not_found", "no such tenant"),
            HubError::Store(error) => ApiError::from(error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match &error {
            // The database is down or unreachable: retrying later is the answer, as for any
            // unavailable dependency. Still Herald's side, so logged.
            StoreError::Database(
                sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_),
            ) => {
                tracing::error!(%error, "the database is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is not answering; retry shortly",
                )
            }
            _ => ApiError::internal(&error),
        }
    }
}

/// Body and query errors from actix's extractors, in Herald's shape.
pub fn json_error(error: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match &error {
        E::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ),
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        ),
        E::Deserialize(inner) if inner.is_data() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            inner.to_string(),
        ),
        E::Deserialize(inner) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {inner}"),
        ),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", error.to_string()),
    }
}

pub fn query_error(error: actix_web::error::QueryPayloadError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", error.to_string())
}

pub fn path_error(error: actix_web::error::PathError) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
}
