//! Logging: `tracing` events to stdout, readable or as JSON lines.
//!
//! Every HTTP request runs inside a span carrying a request id (tracing-actix-web's root
//! span), so one request's lines can be told apart; the span's close is logged, which
//! gives one line per request with its method, route, status and duration. Secrets never
//! reach a log line: keys, tokens and request bodies are not recorded anywhere.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt};

use crate::config::{LogFormat, LogSettings};

/// A subscriber writing to `sink`; `RUST_LOG`, when set, overrides `settings.level`.
pub fn subscriber<W>(settings: &LogSettings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.level.as_str()));
    let registry = tracing_subscriber::registry().with(filter);
    match settings.format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_span_events(FmtSpan::CLOSE)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(sink),
            ),
        ),
        LogFormat::Pretty => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_span_events(FmtSpan::CLOSE)
                    .with_writer(sink),
            ),
        ),
    }
}

/// Installs `subscriber` for the whole process; a second call is a no-op.
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}
