//! One hub shard: an actor owning the connections that hash to it, indexed by tenant, then
//! by user, topic and broadcast.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::{Actor, Context, Handler, Message};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Delivery, Frames, HubError, HubStats};
use crate::domain::event::Target;

pub(super) struct Shard {
    connections: HashMap<u64, Connection>,
    tenants: HashMap<i64, TenantIndex>,
    stats: Arc<HubStats>,
    max_per_user: usize,
    /// Per connection, the frames of the group being delivered (kept to reuse its memory).
    pending: HashMap<u64, Frames>,
}

struct Connection {
    tenant_id: i64,
    user: String,
    topics: Vec<String>,
    sender: mpsc::Sender<Frames>,
}

/// Who listens to what, within one tenant, on this shard.
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

impl Shard {
    pub(super) fn new(stats: Arc<HubStats>, max_per_user: usize) -> Self {
        Shard {
            connections: HashMap::new(),
            tenants: HashMap::new(),
            stats,
            max_per_user,
            pending: HashMap::new(),
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(connection) = self.connections.remove(&id) else {
            return false;
        };
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(index) = self.tenants.get_mut(&connection.tenant_id) {
            remove_from_map(&mut index.users, &connection.user, id);
            for topic in &connection.topics {
                remove_from_map(&mut index.topics, topic, id);
            }
            remove_id(&mut index.broadcast, id);
            if index.is_empty() {
                self.tenants.remove(&connection.tenant_id);
            }
        }
        true
    }

    /// Queues each connection's frames of this group; notes those that could not keep up.
    fn flush(&mut self, slow: &mut Vec<(u64, bool)>) {
        for (id, frames) in self.pending.drain() {
            let Some(connection) = self.connections.get(&id) else {
                continue;
            };
            let count = match &frames {
                Frames::One(_) => 1,
                Frames::Many(frames) => frames.len() as u64,
            };
            match connection.sender.try_send(frames) {
                Ok(()) => {
                    self.stats.delivered.fetch_add(count, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => slow.push((id, true)),
                // The stream has ended already; its unregistration is on its way.
                Err(TrySendError::Closed(_)) => slow.push((id, false)),
            }
        }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "Result<(), HubError>")]
pub(super) struct Register {
    pub id: u64,
    pub tenant_id: i64,
    pub user: String,
    pub topics: Vec<String>,
    pub sender: mpsc::Sender<Frames>,
}

impl Handler<Register> for Shard {
    type Result = Result<(), HubError>;

    fn handle(&mut self, register: Register, _: &mut Context<Self>) -> Self::Result {
        let index = self.tenants.entry(register.tenant_id).or_default();
        let same_user = index.users.get(&register.user).map_or(0, Vec::len);
        if same_user >= self.max_per_user {
            if index.is_empty() {
                self.tenants.remove(&register.tenant_id);
            }
            return Err(HubError::TooManyForUser);
        }
        index
            .users
            .entry(register.user.clone())
            .or_default()
            .push(register.id);
        for topic in &register.topics {
            index
                .topics
                .entry(topic.clone())
                .or_default()
                .push(register.id);
        }
        index.broadcast.push(register.id);
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.connections.insert(
            register.id,
            Connection {
                tenant_id: register.tenant_id,
                user: register.user,
                topics: register.topics,
                sender: register.sender,
            },
        );
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Unregister {
    pub id: u64,
}

impl Handler<Unregister> for Shard {
    type Result = ();

    fn handle(&mut self, unregister: Unregister, _: &mut Context<Self>) {
        self.remove(unregister.id);
    }
}

/// A group of committed events, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Deliver(pub Arc<Vec<Delivery>>);

impl Handler<Deliver> for Shard {
    type Result = ();

    fn handle(&mut self, Deliver(batch): Deliver, _: &mut Context<Self>) {
        for delivery in batch.iter() {
            let Some(index) = self.tenants.get(&delivery.tenant_id) else {
                continue;
            };
            let listeners = match &delivery.target {
                Target::User(user) => index.users.get(user.as_str()),
                Target::Topic(topic) => index.topics.get(topic.as_str()),
                Target::Broadcast => Some(&index.broadcast),
            };
            for &id in listeners.into_iter().flatten() {
                match self.pending.get_mut(&id) {
                    Some(frames) => frames.push(delivery.frame.clone()),
                    None => {
                        self.pending.insert(id, Frames::One(delivery.frame.clone()));
                    }
                }
            }
        }
        let mut slow = Vec::new();
        self.flush(&mut slow);
        for (id, full) in slow {
            // Dropping the sender ends the connection's stream; the browser then reconnects
            // and resumes from the log.
            if self.remove(id) && full {
                self.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(connection = id, "closed a stream that could not keep up");
            }
        }
    }
}
