//! Logging: `tracing` events to stdout, readable or as JSON lines (and, beside them,
//! the traces' layer, `crate::traces`).
//!
//! Every HTTP request runs inside a span carrying a request id (tracing-actix-web's root
//! span), so one request's lines can be told apart; the span's close is logged, which
//! gives one line per request with its method, route, status and duration. Secrets never
//! reach a log line: keys, tokens and request bodies are not recorded anywhere.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt};

use crate::config::{LogFormat, LogSettings};
use crate::traces;

/// A subscriber writing to `sink`, and to `traces` when given (`traces::layer`); `RUST_LOG`,
/// when set, overrides `settings.level`. The log never shows the traces' own spans.
pub fn subscriber<W>(
    settings: &LogSettings,
    traces: Option<traces::TraceLayer>,
    sink: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.level.as_str()))
        .add_directive(
            format!("{}=off", traces::TARGET)
                .parse()
                .expect("a valid directive"),
        );
    let log = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_span_events(FmtSpan::CLOSE)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(sink)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_span_events(FmtSpan::CLOSE)
            .with_writer(sink)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![log];
    layers.extend(traces);
    Box::new(tracing_subscriber::registry().with(layers))
}

/// Installs `subscriber` for the whole process; a second call is a no-op.
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}
