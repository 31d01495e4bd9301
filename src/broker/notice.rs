//! What nodes tell each other: one tagged enum, one encoding, one handler.
//!
//! A notice says "this happened" — a commit group, a tenant's streams ended, a tenant
//! changed, a user's unread count, retention in a tenant's inbox. The node where it
//! happened applies it to itself (`AppState::notify`) and publishes it (`Broker`); every
//! other node applies the same notice the same way when it arrives (`Notice::apply`), so a
//! new kind of notice is one variant here and one arm there. On the wire each is a JSON
//! object tagged `"notice"`, with the sending node's id beside it (`Envelope`).

use serde::{Deserialize, Serialize};

use crate::domain::event::{EventId, Target};
use crate::domain::inbox::Unread;
use crate::domain::log::LoggedEvent;
use crate::domain::names::UserId;
use crate::hub::Hub;
use crate::store::credentials::Credentials;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// A commit group of the sending node, in commit order; each node's sequencer takes it
    /// (it goes to the hub in seq order, gaps read from the log first).
    Committed { events: Vec<WireEvent> },
    /// A tenant's streams whose sessions are over — those the signing key `key_id`
    /// vouched for, or all of them — end with `reason`; what was kept about the tenant goes.
    StreamsEnded {
        tenant: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        reason: String,
    },
    /// A tenant's settings or keys changed: what nodes kept about it is stale.
    TenantChanged { tenant: i64 },
    /// A user's unread count, answered to a read or unread.
    InboxChanged {
        tenant: i64,
        user: String,
        unread: Unread,
    },
    /// Retention removed some of the tenant's inbox items: streams take their counts afresh.
    InboxPruned { tenant: i64 },
}

impl Notice {
    pub fn committed(events: &[&LoggedEvent]) -> Notice {
        Notice::Committed {
            events: events.iter().map(|e| WireEvent::from_event(e)).collect(),
        }
    }

    /// What the notice does on a node, the one it happened on and every other alike. A
    /// commit group is not applied here: it reaches the hub through the sequencer.
    pub fn apply(&self, hub: &Hub, credentials: &Credentials) {
        match self {
            Notice::Committed { .. } => {}
            Notice::StreamsEnded {
                tenant,
                key_id,
                reason,
            } => {
                credentials.forget_tenant(*tenant);
                hub.end_streams(*tenant, key_id.as_deref(), reason);
                hub.tail().changed(*tenant);
            }
            Notice::TenantChanged { tenant } => {
                credentials.forget_tenant(*tenant);
                hub.tail().changed(*tenant);
            }
            Notice::InboxChanged {
                tenant,
                user,
                unread,
            } => {
                if let Ok(user) = UserId::parse(user.as_str()) {
                    hub.inbox_changed(*tenant, &user, *unread);
                }
            }
            Notice::InboxPruned { tenant } => hub.inbox_pruned(*tenant),
        }
    }
}

/// A notice as it travels: with the id of the node that sent it, which skips its own.
#[derive(Serialize, Deserialize)]
pub(super) struct Envelope {
    pub node: String,
    #[serde(flatten)]
    pub notice: Notice,
}

/// A committed event on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEvent {
    tenant: i64,
    epoch: String,
    seq: i64,
    kind: String,
    target: String,
    #[serde(rename = "type")]
    event_type: String,
    data: String,
    created_at: i64,
    #[serde(default)]
    inbox: bool,
}

impl WireEvent {
    fn from_event(event: &LoggedEvent) -> WireEvent {
        WireEvent {
            tenant: event.tenant_id,
            epoch: event.id.epoch.clone(),
            seq: event.id.seq,
            kind: event.target.kind().to_owned(),
            target: event.target.name().to_owned(),
            event_type: event.event_type.clone(),
            data: event.data.clone(),
            created_at: event.created_at,
            inbox: event.inbox,
        }
    }

    /// The event, or `None` if the wire names a target no node would send.
    pub fn into_event(self) -> Option<LoggedEvent> {
        Some(LoggedEvent {
            tenant_id: self.tenant,
            id: EventId {
                epoch: self.epoch,
                seq: self.seq,
            },
            target: Target::from_columns(&self.kind, &self.target)?,
            event_type: self.event_type,
            data: self.data,
            created_at: self.created_at,
            inbox: self.inbox,
            trace: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_reads_back_as_it_was_written_tagged_with_its_kind() {
        let envelope = Envelope {
            node: "n1".into(),
            notice: Notice::StreamsEnded {
                tenant: 7,
                key_id: Some("k".into()),
                reason: "revoked".into(),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"node":"n1","notice":"streams_ended","tenant":7,"key_id":"k","reason":"revoked"}"#
        );
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back.node, "n1");
        assert!(matches!(
            back.notice,
            Notice::StreamsEnded { tenant: 7, key_id: Some(k), reason } if k == "k" && reason == "revoked"
        ));
    }
}
