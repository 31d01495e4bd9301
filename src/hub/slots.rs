//! Each tenant's count of open streams on this node, against its cap — and, with several
//! nodes, the deployment's count through the `StreamLedger`.
//!
//! A stream takes its slot when it subscribes and gives it back when it ends: from its
//! subscription while a task serves it, from its shard once the shard owns its socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::ledger::StreamLedger;
use super::{HubError, StreamCaps};

#[derive(Default)]
pub(super) struct TenantSlots {
    open: Mutex<HashMap<i64, usize>>,
    ledger: Option<Arc<dyn StreamLedger>>,
}

impl TenantSlots {
    pub(super) fn new(ledger: Option<Arc<dyn StreamLedger>>) -> TenantSlots {
        TenantSlots {
            open: Mutex::default(),
            ledger,
        }
    }

    /// Takes a slot for stream `id` of `user` of `tenant_id`: within `node_max` streams of
    /// the tenant on this node, and within `caps` across the deployment.
    pub(super) async fn reserve(
        &self,
        id: u64,
        tenant_id: i64,
        user: &str,
        caps: StreamCaps,
        node_max: usize,
    ) -> Result<(), HubError> {
        if !self.take(tenant_id, caps.per_tenant.min(node_max)) {
            return Err(HubError::TooManyForTenant);
        }
        if let Some(ledger) = &self.ledger
            && let Err(refused) = ledger.reserve(id, tenant_id, user, caps).await
        {
            self.give_back(tenant_id);
            return Err(refused);
        }
        Ok(())
    }

    /// Takes a slot for a new stream of `tenant_id`, unless it has `max` open already.
    fn take(&self, tenant_id: i64, max: usize) -> bool {
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

    /// The tenant's streams across the deployment (this node's where the ledger cannot
    /// tell).
    pub(super) async fn open_streams(&self, tenant_id: i64) -> u64 {
        if let Some(ledger) = &self.ledger
            && let Some(open) = ledger.open_streams(tenant_id).await
        {
            return open;
        }
        self.snapshot().get(&tenant_id).copied().unwrap_or(0) as u64
    }

    /// Stream `id` of `tenant_id` has ended.
    pub(super) fn release(&self, tenant_id: i64, id: u64) {
        self.give_back(tenant_id);
        if let Some(ledger) = &self.ledger {
            ledger.release(id);
        }
    }

    fn give_back(&self, tenant_id: i64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&tenant_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&tenant_id);
            }
        }
    }
}
