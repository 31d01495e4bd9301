//! Who listens to what on one shard: connection ids by tenant, then by user, by topic and
//! for broadcasts, so a delivery finds its listeners without looking at anyone else's.

use std::collections::HashMap;

use super::{Delivery, HubError};
use crate::domain::event::Target;

#[derive(Default)]
pub(super) struct ListenerIndex {
    tenants: HashMap<i64, TenantIndex>,
}

/// One tenant's listeners.
#[derive(Default)]
struct TenantIndex {
    users: HashMap<String, Vec<u64>>,
    topics: HashMap<String, Vec<u64>>,
    broadcast: Vec<u64>,
}

impl TenantIndex {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.topics.is_empty() && self.broadcast.is_empty()
    }
}

impl ListenerIndex {
    /// Adds connection `id` for the user's own events, the tenant's broadcasts and
    /// `topics` — unless the user has `max_per_user` connections here already.
    pub(super) fn add(
        &mut self,
        id: u64,
        tenant_id: i64,
        user: &str,
        topics: &[String],
        max_per_user: usize,
    ) -> Result<(), HubError> {
        let index = self.tenants.entry(tenant_id).or_default();
        if index.users.get(user).map_or(0, Vec::len) >= max_per_user {
            if index.is_empty() {
                self.tenants.remove(&tenant_id);
            }
            return Err(HubError::TooManyForUser);
        }
        index.users.entry(user.to_owned()).or_default().push(id);
        for topic in topics {
            index.topics.entry(topic.clone()).or_default().push(id);
        }
        index.broadcast.push(id);
        Ok(())
    }

    /// Takes connection `id` out, as it was added.
    pub(super) fn remove(&mut self, id: u64, tenant_id: i64, user: &str, topics: &[String]) {
        let Some(index) = self.tenants.get_mut(&tenant_id) else {
            return;
        };
        remove_from_map(&mut index.users, user, id);
        for topic in topics {
            remove_from_map(&mut index.topics, topic, id);
        }
        remove_id(&mut index.broadcast, id);
        if index.is_empty() {
            self.tenants.remove(&tenant_id);
        }
    }

    /// The connections of one user of a tenant.
    pub(super) fn of_user(&self, tenant_id: i64, user: &str) -> &[u64] {
        self.tenants
            .get(&tenant_id)
            .and_then(|index| index.users.get(user))
            .map_or(&[], Vec::as_slice)
    }

    /// The connections `delivery` goes to.
    pub(super) fn of(&self, delivery: &Delivery) -> &[u64] {
        let Some(index) = self.tenants.get(&delivery.tenant_id) else {
            return &[];
        };
        let listeners = match &delivery.target {
            Target::User(user) => index.users.get(user.as_str()),
            Target::Topic(topic) => index.topics.get(topic.as_str()),
            Target::Broadcast => Some(&index.broadcast),
        };
        listeners.map_or(&[], Vec::as_slice)
    }
}

fn remove_id(list: &mut Vec<u64>, id: u64) {
    if let Some(at) = list.iter().position(|&x| x == id) {
        list.swap_remove(at);
    }
}

fn remove_from_map(map: &mut HashMap<String, Vec<u64>>, key: &str, id: u64) {
    if let Some(list) = map.get_mut(key) {
        remove_id(list, id);
        if list.is_empty() {
            map.remove(key);
        }
    }
}
