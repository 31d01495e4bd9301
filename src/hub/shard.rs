//! One hub shard: an actor owning the connections that hash to it, indexed by tenant, then
//! by user, topic and broadcast.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::{Actor, Context, Handler, Message};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Delivery, HubError, HubStats, LiveFrame};
use crate::domain::event::Target;

pub(super) struct Shard {
    connections: HashMap<u64, Connection>,
    tenants: HashMap<i64, TenantIndex>,
    stats: Arc<HubStats>,
    max_per_user: usize,
}

struct Connection {
    tenant_id: i64,
    user: String,
    topics: Vec<String>,
    sender: mpsc::Sender<LiveFrame>,
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
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(connection) = self.connections.remove(&id) else {
            return false;
        };
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

    /// Queues `frame` for each listener; returns those that could not keep up.
    fn offer(&self, listeners: &[u64], frame: &LiveFrame, slow: &mut Vec<(u64, bool)>) {
        for id in listeners {
            let Some(connection) = self.connections.get(id) else {
                continue;
            };
            match connection.sender.try_send(frame.clone()) {
                Ok(()) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Full(_)) => slow.push((*id, true)),
                // The stream has ended already; its unregistration is on its way.
                Err(TrySendError::Closed(_)) => slow.push((*id, false)),
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
    pub sender: mpsc::Sender<LiveFrame>,
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
        let mut slow = Vec::new();
        for delivery in batch.iter() {
            let Some(index) = self.tenants.get(&delivery.tenant_id) else {
                continue;
            };
            let listeners = match &delivery.target {
                Target::User(user) => index.users.get(user),
                Target::Topic(topic) => index.topics.get(topic),
                Target::Broadcast => Some(&index.broadcast),
            };
            if let Some(listeners) = listeners {
                self.offer(listeners, &delivery.frame, &mut slow);
            }
            if !slow.is_empty() {
                for (id, full) in slow.drain(..) {
                    // Dropping the sender ends the connection's stream; the browser then
                    // reconnects and resumes from the log.
                    if self.remove(id) && full {
                        self.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(connection = id, "closed a stream that could not keep up");
                    }
                }
            }
        }
    }
}
