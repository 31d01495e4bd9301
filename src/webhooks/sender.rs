//! One attempt at one message: a signed `POST` with a real HTTP client (reqwest on rustls:
//! connections reused, no redirects followed, a bound on the whole exchange and on the
//! answer's size), and the guard that keeps it off private addresses in production — on
//! the address the name resolves to at connect time, not on the URL's text alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use tracing::Instrument;

use crate::domain::now_ms;
use crate::domain::webhook::{Targets, is_public, signature_header};
use crate::store::webhooks::{Attempt, Claimed};
use crate::traces;

/// The most of an answer Herald reads; a longer one fails the attempt.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// What an error message of an attempt may hold.
const MAX_ERROR_CHARS: usize = 500;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx, in time.
    Delivered,
    /// 410: the receiver wants nothing more.
    Gone,
    /// Anything else; `Retry-After` where a 429 or 503 gave one.
    Failed { retry_after: Option<Duration> },
}

pub struct Sender {
    client: reqwest::Client,
    targets: Targets,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("address not allowed")]
struct AddressNotAllowed;

/// Resolves a name to its public addresses only; none left is `AddressNotAllowed`.
struct PublicAddresses;

impl Resolve for PublicAddresses {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|addr| is_public(addr.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(AddressNotAllowed) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

impl Sender {
    pub fn new(targets: Targets, timeout: Duration) -> Result<Sender, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60));
        if targets == Targets::PublicOnly {
            builder = builder.dns_resolver(Arc::new(PublicAddresses));
        }
        Ok(Sender {
            client: builder.build()?,
            targets,
            timeout,
        })
    }

    /// Attempts `message` once: what happened, as the deliveries log keeps it.
    pub async fn attempt(&self, message: &Claimed) -> (Attempt, Verdict) {
        let at = now_ms();
        let started = Instant::now();
        let (trace, traceparent) =
            traces::webhook_send(message.traceparent.as_deref(), &message.kind);
        let (status_code, outcome) = self
            .exchange(message, at, traceparent.as_deref())
            .instrument(trace.clone())
            .await;
        traces::attempted(&trace, status_code, outcome.is_ok());
        let (verdict, error) = match outcome {
            Ok(verdict) => (verdict, None),
            Err(error) => (Verdict::Failed { retry_after: None }, Some(error)),
        };
        let attempt = Attempt {
            at,
            status_code,
            error: error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect()),
            duration_ms: started.elapsed().as_millis() as i64,
        };
        (attempt, verdict)
    }

    async fn exchange(
        &self,
        message: &Claimed,
        at: i64,
        traceparent: Option<&str>,
    ) -> (Option<u16>, Result<Verdict, String>) {
        let url = match reqwest::Url::parse(&message.endpoint.url) {
            Ok(url) => url,
            Err(error) => {
                return (
                    None,
                    Err(format!("the endpoint's URL is not valid: {error}")),
                );
            }
        };
        // A literal address is never resolved, so the resolver's guard cannot see it.
        if self.targets == Targets::PublicOnly && !literal_is_allowed(&url) {
            return (None, Err(AddressNotAllowed.to_string()));
        }
        let timestamp = at / 1000;
        let body = message.body.as_bytes();
        let signature = signature_header(
            &message.endpoint.signing_secrets(at),
            &message.id,
            timestamp,
            body,
        );
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("webhook-id", message.id.as_str()),
            ("webhook-timestamp", &timestamp.to_string()),
            ("webhook-signature", &signature),
            ("traceparent", traceparent.unwrap_or_default()),
        ] {
            if value.is_empty() {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        let sent = self
            .client
            .post(url)
            .headers(headers)
            .body(message.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return (None, Err(self.describe(&error))),
        };
        let status = response.status();
        let code = Some(status.as_u16());
        let retry_after = retry_after(response.headers());
        // The answer is read (so the connection can be reused) up to a bound.
        let mut read = 0usize;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read > MAX_ANSWER_BYTES {
                        return (
                            code,
                            Err(format!(
                                "the answer is larger than {} KB",
                                MAX_ANSWER_BYTES / 1024
                            )),
                        );
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    return (
                        code,
                        Err(format!("the answer broke off: {}", self.describe(&error))),
                    );
                }
            }
        }
        let honoured = matches!(status.as_u16(), 429 | 503)
            .then_some(retry_after)
            .flatten();
        let verdict = if status.is_success() {
            Ok(Verdict::Delivered)
        } else if status == reqwest::StatusCode::GONE {
            Ok(Verdict::Gone)
        } else if status.is_redirection() {
            Err(format!("{status}: redirects are not followed"))
        } else if let Some(after) = honoured {
            Ok(Verdict::Failed {
                retry_after: Some(after),
            })
        } else {
            Err(format!("answered {status}"))
        };
        (code, verdict)
    }

    /// A transport error in words an operator can act on.
    fn describe(&self, error: &reqwest::Error) -> String {
        let mut source: Option<&dyn std::error::Error> = Some(error);
        while let Some(cause) = source {
            if cause.is::<AddressNotAllowed>() {
                return AddressNotAllowed.to_string();
            }
            source = cause.source();
        }
        if error.is_timeout() {
            return format!("no answer within {} s", self.timeout.as_secs_f64());
        }
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// Whether a URL whose host is a literal address names a public one.
fn literal_is_allowed(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public(ip.into()),
        Some(url::Host::Ipv6(ip)) => is_public(ip.into()),
        _ => true,
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}
