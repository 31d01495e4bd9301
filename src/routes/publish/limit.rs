//! The publish route's rate limit, as the client sees it: the IETF RateLimit header fields
//! on every publish that reached the tenant's bucket, and `429 rate_limited` with
//! `Retry-After` when it is empty.
//!
//! The bucket is described as the draft's quota policy: `q` = the burst, `w` = the seconds
//! an empty bucket takes to fill; `r` = what may be published at once now, `t` = the
//! seconds until the bucket is full again.

use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};

use crate::error::{ApiError, ErrorCode};
use crate::limits::Rate;

const POLICY: &str = "\"publish\"";

/// Whole seconds, rounded up: a client that waits that long finds room.
fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// `RateLimit-Policy` and `RateLimit`, for `remaining` events now and a bucket full again
/// after `full_in`.
pub fn rate_headers(rate: Rate, remaining: u64, full_in: Duration) -> [(HeaderName, String); 2] {
    [
        (
            HeaderName::from_static("ratelimit-policy"),
            format!(
                "{POLICY};q={};w={}",
                rate.burst,
                seconds(rate.full_after()).max(1)
            ),
        ),
        (
            HeaderName::from_static("ratelimit"),
            format!("{POLICY};r={remaining};t={}", seconds(full_in)),
        ),
    ]
}

/// The `Retry-After` of a refused publish: whole seconds, at least one.
pub fn retry_after_secs(retry_after: Duration) -> u64 {
    seconds(retry_after).max(1)
}

/// `429 rate_limited`: nothing was stored; `n` events fit after `retry_after`.
pub fn refused(rate: Rate, n: u64, retry_after: Duration) -> HttpResponse {
    let wait = retry_after_secs(retry_after);
    let error = ApiError::new(
        ErrorCode::RateLimited,
        format!(
            "this tenant may publish {} events a second ({} at once); {n} more fit in {wait} s",
            rate.per_sec, rate.burst
        ),
    );
    let mut answer = error.error_response();
    let headers = rate_headers(rate, 0, retry_after)
        .into_iter()
        .chain([(RETRY_AFTER, wait.to_string())]);
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

/// A batch larger than the bucket could never be admitted: a client error, not a wait.
pub fn never_fits(rate: Rate, n: u64) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyEvents,
        format!(
            "this publish makes {n} events, more than this tenant's publish_burst ({}) lets \
             through at once; split it",
            rate.burst
        ),
    )
}
