//! Traces: OpenTelemetry spans along the data path, exported over OTLP/HTTP, off unless
//! `telemetry.otlp_endpoint` is set.
//!
//! The spans are `tracing` spans of their own target, `TARGET`, and only the OpenTelemetry
//! layer listens to that target: log lines never show them, and with no endpoint nobody is
//! interested in them, so each span site costs one cached check (tracing's callsite
//! interest) and values that only a trace needs are never built.
//!
//! Whether a trace is recorded is decided where it begins (head sampling): a request with a
//! `traceparent` as its caller decided, any other at `telemetry.sample_ratio`. A request not
//! recorded gets no spans at all — its steps see no traced parent and make none — so at 1 %
//! the other 99 % cost a header lookup and a random number, not six spans each.
//!
//! What is traced:
//! - `publish` (from a caller's W3C `traceparent`, else a new trace): `auth`, `limits`,
//!   `log.commit` (the group commit it was part of, with the group's size), `hub.handoff`;
//!   then, for one stream per shard that the event's group reaches, `stream.write`.
//! - `stream.open`: `auth`, `subscribe` (registering and reading where the log stands),
//!   and on Herald's own stream path `replay` and `handover` (the socket to its shard).
//! - `webhook.send`, one per attempt of a message that a traced request caused (a
//!   publish's `notification.unseen`, a `POST /v1/webhooks/{id}/test`); the attempt carries
//!   its `traceparent` to the endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

use crate::config::TelemetrySettings;

/// The target of every span of a trace.
pub const TARGET: &str = "herald::traces";

/// Whether traces are exported (set once, at start).
static ON: AtomicBool = AtomicBool::new(false);
/// `telemetry.sample_ratio`, as `f64` bits (set once, at start).
static RATIO: AtomicU64 = AtomicU64::new(0);

/// Whether traces are exported: what only a trace needs is looked for only then.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// What the subscriber adds to export traces (`telemetry::subscriber`).
pub type TraceLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The exporter's handle: dropping it sends what is still buffered.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("herald: traces not all sent at exit: {error}");
        }
    }
}

/// The layer that turns `TARGET`'s spans into OpenTelemetry spans and exports them, with
/// its exporter; `None` when no endpoint is set.
pub fn layer(settings: &TelemetrySettings) -> anyhow::Result<Option<(TraceLayer, Exporter)>> {
    let base = settings.otlp_endpoint.trim().trim_end_matches('/');
    if base.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/traces"))
        .with_timeout(Duration::from_secs(10))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // The ratio is applied where a trace begins (`recorded`): what reaches the SDK is
        // to be recorded, or has a parent that says whether.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("herald");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target(TARGET, LevelFilter::TRACE));
    RATIO.store(settings.sample_ratio.to_bits(), Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    Ok(Some((Box::new(layer), Exporter { provider })))
}

/// A `publish` span, continuing the caller's trace when its request has a `traceparent`;
/// a disabled span when the trace is not recorded.
pub fn publish(headers: &actix_web::http::header::HeaderMap) -> Span {
    let Some(parent) = recorded(&Headers(headers)) else {
        return Span::none();
    };
    let span = tracing::info_span!(
        target: TARGET,
        "publish",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/events",
        herald.tenant = tracing::field::Empty,
        herald.events = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    continue_from(&span, parent);
    span
}

/// Records on `span` the status its request was answered with.
pub fn answered(span: &Span, status: actix_web::http::StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// A `stream.open` span for the tenant `slug`; `traceparent` is the request's, if it has
/// one. A disabled span when the trace is not recorded.
pub fn stream_open(slug: &str, traceparent: Option<&str>) -> Span {
    let Some(parent) = recorded(&Traceparent(traceparent.unwrap_or_default())) else {
        return Span::none();
    };
    let span = tracing::info_span!(
        target: TARGET,
        "stream.open",
        otel.kind = "server",
        http.route = "/t/{slug}/stream",
        herald.tenant = slug,
    );
    continue_from(&span, parent);
    span
}

/// A step of the current span's trace: `auth`.
pub fn auth() -> Span {
    step(|| tracing::info_span!(target: TARGET, "auth"))
}

/// A step of the current span's trace: `limits`.
pub fn limits() -> Span {
    step(|| tracing::info_span!(target: TARGET, "limits"))
}

/// A step of the current span's trace: `subscribe`.
pub fn subscribe() -> Span {
    step(|| tracing::info_span!(target: TARGET, "subscribe"))
}

/// A step of the current span's trace: `replay`.
pub fn replay() -> Span {
    step(|| tracing::info_span!(target: TARGET, "replay"))
}

/// A step of the current span's trace: `handover`.
pub fn handover() -> Span {
    step(|| tracing::info_span!(target: TARGET, "handover"))
}

/// The group commit a publish's events were part of.
pub fn commit(publish: &Span, requests: usize, events: usize) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: publish,
        "log.commit",
        herald.commit.requests = requests,
        herald.commit.events = events,
    )
}

/// Handing a publish's committed events to the hub (and the tail).
pub fn handoff(publish: &Span) -> Span {
    tracing::info_span!(target: TARGET, parent: publish, "hub.handoff")
}

/// Where a traced event's publish is, for spans that come after its request's: `None`
/// unless the span is recorded.
pub fn sampled_context(span: &Span) -> Option<Arc<SpanContext>> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_sampled().then(|| Arc::new(span_context))
}

/// A shard writing frames to one stream, in the trace of the publish at `parent`.
pub fn stream_write(parent: &SpanContext, frames: usize) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "stream.write",
        herald.frames = frames,
    );
    let _ = span.set_parent(Context::new().with_remote_span_context(parent.clone()));
    span
}

/// The W3C `traceparent` of `span`, to carry into what it causes later (a webhook message):
/// `None` unless traces are on and the span is recorded.
pub fn traceparent(span: &Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// One attempt at a webhook message that a traced request caused (`traceparent`, as the
/// message keeps it): the span, and the `traceparent` the attempt sends — the span's own
/// while traces are on, else the one kept.
pub fn webhook_send(traceparent: Option<&str>, kind: &str) -> (Span, Option<String>) {
    let Some(kept) = traceparent else {
        return (Span::none(), None);
    };
    let parent = match recorded(&Traceparent(kept)) {
        Some(parent) if parent.span().span_context().is_valid() => parent,
        _ => return (Span::none(), Some(kept.to_owned())),
    };
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "webhook.send",
        otel.kind = "client",
        herald.webhook.type = kind,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    continue_from(&span, parent);
    let sent = self::traceparent(&span).unwrap_or_else(|| kept.to_owned());
    (span, Some(sent))
}

/// Records on a `webhook.send` span how the attempt went: the endpoint's status, if it
/// answered, and whether the message is delivered (or failed for good, or will be retried).
pub fn attempted(span: &Span, status: Option<u16>, answered: bool) {
    if span.is_disabled() {
        return;
    }
    if let Some(status) = status {
        span.record("http.response.status_code", status);
    }
    if !answered || status.is_some_and(|status| status >= 400) {
        span.record("otel.status_code", "error");
    }
}

/// A request's `traceparent`, when it is one W3C Trace Context accepts (version `00`, a
/// trace id and a parent id that are not all zeros).
pub fn valid_traceparent(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let valid = parent.span().span_context().is_valid();
    valid.then(|| Headers(headers).get("traceparent").map(str::to_owned))?
}

/// Whether a trace that begins here with the carrier's `traceparent` (if it has one) is
/// recorded: `Some` with the caller's context (empty without one) when it is. Always `None`
/// while traces are off.
fn recorded(carrier: &dyn Extractor) -> Option<Context> {
    if !on() {
        return None;
    }
    let parent = TraceContextPropagator::new().extract(carrier);
    let span_context = parent.span().span_context().clone();
    let record = match span_context.is_valid() {
        true => span_context.is_sampled(),
        false => rand::random::<f64>() < f64::from_bits(RATIO.load(Ordering::Relaxed)),
    };
    record.then_some(parent)
}

/// A step of the trace being recorded where it is made (the current span is one of
/// `TARGET`'s): a disabled span anywhere else, so that a request whose trace is not
/// recorded begins no trace of its own with its steps.
fn step(make: impl FnOnce() -> Span) -> Span {
    if !on() {
        return Span::none();
    }
    let current = Span::current();
    match current.metadata() {
        Some(metadata) if metadata.target() == TARGET => make(),
        _ => Span::none(),
    }
}

/// Makes `span` a child of the caller's trace, if `parent` holds one.
fn continue_from(span: &Span, parent: Context) {
    if !span.is_disabled() && parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// A request's headers, as the propagator reads them.
struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// A `traceparent` alone.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}
