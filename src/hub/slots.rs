//! Each tenant's count of open streams on this node, against its cap.
//!
//! A stream takes its slot when it subscribes and gives it back when it ends: from its
//! subscription while a task serves it, from its shard once the shard owns its socket.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub(super) struct TenantSlots {
    open: Mutex<HashMap<i64, usize>>,
}

impl TenantSlots {
    /// Takes a slot for a new stream of `tenant_id`, unless it has `max` open already.
    pub(super) fn take(&self, tenant_id: i64, max: usize) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.get(&tenant_id).copied().unwrap_or(0) >= max {
            return false;
        }
        *open.entry(tenant_id).or_insert(0) += 1;
        true
    }

    pub(super) fn snapshot(&self) -> HashMap<i64, usize> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn release(&self, tenant_id: i64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&tenant_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&tenant_id);
            }
        }
    }
}
