//! Each tenant's count of open streams on this node, against its cap — and, with several
//! nodes, the deployment's count through the `StreamLedger` — and each user's, whose first
//! stream here and last one gone are the node's presence transitions (`Transition`, to the
//! node's presence task).
//!
//! A stream takes its slot when it subscribes and gives it back when it ends: from its
//! subscription while a task serves it, from its shard once the shard owns its socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::ledger::StreamLedger;
use super::{HubError, StreamCaps};
use crate::domain::now_ms;
use crate::store::presence::Transition;

/// Who a stream is for.
type UserKey = (i64, Box<str>);

#[derive(Default)]
struct Open {
    tenants: HashMap<i64, usize>,
    users: HashMap<UserKey, usize>,
    streams: HashMap<u64, UserKey>,
}

/// Presence transitions waiting for the node's presence task, which takes them a batch at
/// a time: telling one costs a lock, never a wake-up of another thread.
#[derive(Default)]
pub struct PendingTransitions(Mutex<Vec<Transition>>);

impl PendingTransitions {
    fn push(&self, transition: Transition) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(transition);
    }

    /// Everything told since the last time.
    pub fn take(&self) -> Vec<Transition> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[derive(Default)]
pub(super) struct TenantSlots {
    open: Mutex<Open>,
    ledger: Option<Arc<dyn StreamLedger>>,
    transitions: Option<Arc<PendingTransitions>>,
}

impl TenantSlots {
    pub(super) fn new(
        ledger: Option<Arc<dyn StreamLedger>>,
        transitions: Option<Arc<PendingTransitions>>,
    ) -> TenantSlots {
        TenantSlots {
            open: Mutex::default(),
            ledger,
            transitions,
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
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
        let key: UserKey = (tenant_id, user.into());
        let first = {
            let mut open = self.open();
            open.streams.insert(id, key.clone());
            let count = open.users.entry(key).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            self.tell(tenant_id, user, true);
        }
        Ok(())
    }

    /// Takes a slot for a new stream of `tenant_id`, unless it has `max` open already.
    fn take(&self, tenant_id: i64, max: usize) -> bool {
        let mut open = self.open();
        if open.tenants.get(&tenant_id).copied().unwrap_or(0) >= max {
            return false;
        }
        *open.tenants.entry(tenant_id).or_insert(0) += 1;
        true
    }

    pub(super) fn snapshot(&self) -> HashMap<i64, usize> {
        self.open().tenants.clone()
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

    /// Each of `users`' streams on this node.
    pub(super) fn user_streams_here(&self, tenant_id: i64, users: &[String]) -> Vec<u64> {
        let open = self.open();
        users
            .iter()
            .map(|user| {
                let key: UserKey = (tenant_id, user.as_str().into());
                open.users.get(&key).copied().unwrap_or(0) as u64
            })
            .collect()
    }

    /// Each of `users`' streams on the other nodes: none when this node runs alone,
    /// `None` when the ledger cannot count them now.
    pub(super) async fn user_streams_elsewhere(
        &self,
        tenant_id: i64,
        users: &[String],
    ) -> Option<Vec<u64>> {
        match &self.ledger {
            None => Some(vec![0; users.len()]),
            Some(ledger) => ledger.user_streams_elsewhere(tenant_id, users).await,
        }
    }

    /// Stream `id` of `tenant_id` has ended.
    pub(super) fn release(&self, tenant_id: i64, id: u64) {
        self.give_back(tenant_id);
        let last = {
            let mut open = self.open();
            match open.streams.remove(&id) {
                Some(key) => match open.users.get_mut(&key) {
                    Some(count) if *count > 1 => {
                        *count -= 1;
                        None
                    }
                    _ => {
                        open.users.remove(&key);
                        Some(key)
                    }
                },
                None => None,
            }
        };
        if let Some(ledger) = &self.ledger {
            ledger.release(id);
        }
        if let Some((tenant_id, user)) = last {
            self.tell(tenant_id, &user, false);
        }
    }

    fn give_back(&self, tenant_id: i64) {
        let mut open = self.open();
        if let Some(count) = open.tenants.get_mut(&tenant_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.tenants.remove(&tenant_id);
            }
        }
    }

    fn tell(&self, tenant_id: i64, user: &str, arrived: bool) {
        if let Some(transitions) = &self.transitions {
            transitions.push(Transition {
                tenant_id,
                user: user.to_owned(),
                at: now_ms(),
                arrived,
            });
        }
    }
}
