//! `/metrics`: Herald's counters in the Prometheus text format.
//!
//! The counters themselves live where the work happens (`LogStats` in the event log,
//! `HubStats` in the hub, `UsageMeter` per tenant) as plain atomics and maps; a scrape
//! copies them into the `metrics` recorder and renders it with metrics-exporter-prometheus.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::state::AppState;
use crate::store::fault::Fault;

/// Inbox pages listed and read/unread requests done on this node: counted where they are
/// answered (`routes::inbox`), read here.
pub static INBOX_LISTED: AtomicU64 = AtomicU64::new(0);
pub static INBOX_MARKED: AtomicU64 = AtomicU64::new(0);
/// Browsers' receipt requests recorded, and the facts they newly told (`store::receipts`).
pub static RECEIPT_REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static RECEIPTS_DELIVERED: AtomicU64 = AtomicU64::new(0);
pub static RECEIPTS_SEEN: AtomicU64 = AtomicU64::new(0);
pub static RECEIPTS_READ: AtomicU64 = AtomicU64::new(0);
/// Fallbacks decided: fired (`notification.unseen` written), skipped (the fact had
/// happened), cancelled by the tenant.
pub static FALLBACKS_FIRED: AtomicU64 = AtomicU64::new(0);
pub static FALLBACKS_SKIPPED: AtomicU64 = AtomicU64::new(0);
pub static FALLBACKS_CANCELLED: AtomicU64 = AtomicU64::new(0);

/// This node's Prometheus registry. Each server has its own, so two Heralds in one
/// process (as in the tests) never mix their figures.
pub struct Registry(PrometheusRecorder);

impl Default for Registry {
    fn default() -> Self {
        Self(PrometheusBuilder::new().build_recorder())
    }
}

/// The Prometheus text for this node's counters.
pub fn render(state: &AppState) -> String {
    let recorder = &state.metrics.0;
    metrics::with_local_recorder(recorder, || record(state));
    recorder.handle().render()
}

/// Copies this node's counters into the recorder in scope.
fn record(state: &AppState) {
    let (log, hub) = (state.log.stats(), state.hub.stats());
    metrics::gauge!("herald_streams_open").set(hub.streams_open.load(Ordering::Relaxed) as f64);
    metrics::counter!("herald_streams_closed_slow_total")
        .absolute(hub.slow_closed.load(Ordering::Relaxed));
    metrics::counter!("herald_frames_queued_total").absolute(hub.delivered.load(Ordering::Relaxed));
    metrics::counter!("herald_streams_opened_total", "path" => "herald")
        .absolute(hub.opened.herald.load(Ordering::Relaxed));
    metrics::counter!("herald_streams_opened_total", "path" => "actix")
        .absolute(hub.opened.actix.load(Ordering::Relaxed));
    metrics::counter!("herald_events_committed_total").absolute(log.events.load(Ordering::Relaxed));
    metrics::counter!("herald_publish_requests_total")
        .absolute(log.requests.load(Ordering::Relaxed));
    metrics::counter!("herald_commit_groups_total").absolute(log.groups.load(Ordering::Relaxed));
    let health = state.store.health();
    for (fault, failed) in [
        (Fault::Full, &health.full),
        (Fault::Unavailable, &health.unavailable),
    ] {
        metrics::counter!("herald_storage_failed_commits_total", "fault" => fault.as_str())
            .absolute(failed.load(Ordering::Relaxed));
        let now = health.current() == Some(fault);
        metrics::gauge!("herald_storage_fault", "fault" => fault.as_str())
            .set(f64::from(u8::from(now)));
    }
    for (code, count) in crate::error::answered() {
        metrics::counter!("herald_error_answers_total", "code" => code.as_str()).absolute(count);
    }
    metrics::counter!("herald_malformed_requests_total")
        .absolute(crate::error::malformed_requests());
    metrics::counter!("herald_inbox_lists_total").absolute(INBOX_LISTED.load(Ordering::Relaxed));
    metrics::counter!("herald_inbox_marks_total").absolute(INBOX_MARKED.load(Ordering::Relaxed));
    metrics::counter!("herald_receipt_requests_total")
        .absolute(RECEIPT_REQUESTS.load(Ordering::Relaxed));
    for (fact, count) in [
        ("delivered", &RECEIPTS_DELIVERED),
        ("seen", &RECEIPTS_SEEN),
        ("read", &RECEIPTS_READ),
    ] {
        metrics::counter!("herald_receipts_total", "fact" => fact)
            .absolute(count.load(Ordering::Relaxed));
    }
    for (outcome, count) in [
        ("fired", &FALLBACKS_FIRED),
        ("skipped", &FALLBACKS_SKIPPED),
        ("cancelled", &FALLBACKS_CANCELLED),
    ] {
        metrics::counter!("herald_fallbacks_total", "outcome" => outcome)
            .absolute(count.load(Ordering::Relaxed));
    }
    let webhooks = state.outbox.stats();
    for (kind, counts) in webhooks.by_type() {
        for (outcome, count) in [
            ("delivered", counts.delivered),
            ("failed_attempt", counts.failed_attempts),
            ("failed", counts.given_up),
        ] {
            metrics::counter!("herald_webhook_messages_total", "type" => kind.clone(), "outcome" => outcome)
                .absolute(count);
        }
    }
    for (kind, pending) in webhooks.pending() {
        metrics::gauge!("herald_webhook_pending", "type" => kind).set(pending as f64);
    }
    metrics::counter!("herald_webhook_attempts_total")
        .absolute(webhooks.attempts.load(Ordering::Relaxed));
    metrics::counter!("herald_webhook_attempt_milliseconds_total")
        .absolute(webhooks.attempt_ms_total.load(Ordering::Relaxed));
    metrics::counter!("herald_webhook_endpoints_disabled_total")
        .absolute(webhooks.endpoints_disabled.load(Ordering::Relaxed));
    state.usage.delivered(&hub.delivered_to);
    for line in state.usage.lines(&state.hub.open_streams()) {
        let tenant = line.label;
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        metrics::counter!("herald_tenant_published_total", "tenant" => tenant.clone())
            .absolute(count(line.counts.published));
        metrics::counter!("herald_tenant_rate_limited_total", "tenant" => tenant.clone())
            .absolute(count(line.counts.rate_limited));
        metrics::counter!("herald_tenant_delivered_total", "tenant" => tenant.clone())
            .absolute(count(line.counts.delivered));
        metrics::gauge!("herald_tenant_streams_open", "tenant" => tenant)
            .set(line.streams_open as f64);
    }
    if let (Some(connected), Some(stats)) = (state.broker.connected(), state.broker.stats()) {
        metrics::gauge!("herald_redis_connected").set(f64::from(u8::from(connected)));
        metrics::gauge!("herald_rate_limits_shared")
            .set(f64::from(u8::from(!state.budget.degraded())));
        metrics::counter!("herald_broker_notices_received_total")
            .absolute(stats.notices_received.load(Ordering::Relaxed));
        metrics::counter!("herald_broker_notices_dropped_total")
            .absolute(stats.notices_dropped.load(Ordering::Relaxed));
        metrics::counter!("herald_broker_events_read_from_log_total")
            .absolute(stats.events_read_from_log.load(Ordering::Relaxed));
    }
}
