//! Latency histograms and their summary.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Microseconds, 1 µs to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds")
}

/// The summary of latencies in microseconds.
pub fn summary_of(micros: &[u64]) -> Value {
    let mut latencies = histogram();
    for &micros in micros {
        let _ = latencies.record(micros.max(1));
    }
    summary(&latencies)
}

/// p50/p99/p99.9/max in milliseconds.
pub fn summary(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| (micros as f64 / 1000.0 * 1000.0).round() / 1000.0;
    json!({
        "count": histogram.len(),
        "p50_ms": ms(histogram.value_at_quantile(0.50)),
        "p99_ms": ms(histogram.value_at_quantile(0.99)),
        "p999_ms": ms(histogram.value_at_quantile(0.999)),
        "max_ms": ms(histogram.max()),
    })
}
