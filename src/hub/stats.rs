//! What the hub counts for `/metrics`, the usage meter and the tests: streams open, closed
//! as slow and opened by path, frames queued, and events delivered per tenant.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

/// Counters for `/metrics` and the tests.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Streams registered with the shards now (a stream dropped as too slow leaves at
    /// once, even while its socket waits to be closed).
    pub streams_open: AtomicU64,
    /// Streams closed because their queue was full.
    pub slow_closed: AtomicU64,
    /// Frames put into connection queues.
    pub delivered: AtomicU64,
    /// Events handed to streams per tenant, since the usage meter last took them.
    pub delivered_to: TenantCounts,
    /// Streams opened, by the path that served them.
    pub opened: OpenedByPath,
}

/// Counts per tenant, added to by the shards and taken by the usage meter.
#[derive(Debug, Default)]
pub struct TenantCounts(std::sync::Mutex<HashMap<i64, u64>>);

impl TenantCounts {
    pub(crate) fn add(&self, counts: impl IntoIterator<Item = (i64, u64)>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (tenant_id, count) in counts {
            *map.entry(tenant_id).or_insert(0) += count;
        }
    }

    /// Everything counted since the last call.
    pub fn take(&self) -> HashMap<i64, u64> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Streams opened on each path (see `crate::stream_path`).
#[derive(Debug, Default)]
pub struct OpenedByPath {
    /// Herald's own HTTP/1.1 stream handler.
    pub herald: AtomicU64,
    /// actix-web's route.
    pub actix: AtomicU64,
}
