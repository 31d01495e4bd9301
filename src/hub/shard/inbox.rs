//! A user's unread count reaching their streams on this shard (see `hub::inbox`): a
//! stream served by its own task gets it in its queue; an owned stream's count is updated
//! here, and taken afresh from the database when it is older than what the stream has sent.

use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message};

use super::Shard;
use crate::domain::inbox::Unread;
use crate::domain::names::UserId;
use crate::hub::Queued;
use crate::hub::sink::Sink;

/// The count a read or unread answered, for every stream of the user.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::hub) struct InboxChanged {
    pub tenant_id: i64,
    pub user: Box<str>,
    pub unread: Unread,
}

impl Handler<InboxChanged> for Shard {
    type Result = ();

    fn handle(&mut self, changed: InboxChanged, ctx: &mut Context<Self>) {
        let streams = self
            .listeners
            .of_user(changed.tenant_id, &changed.user)
            .to_vec();
        for id in streams {
            self.inbox_count(id, changed.unread, ctx);
        }
    }
}

/// Retention removed some of the tenant's inbox items: its streams take their counts afresh.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::hub) struct InboxPruned {
    pub tenant_id: i64,
}

impl Handler<InboxPruned> for Shard {
    type Result = ();

    fn handle(&mut self, pruned: InboxPruned, ctx: &mut Context<Self>) {
        for id in self.tenant_stream_ids(pruned.tenant_id, |_| true) {
            let Some(connection) = self.streams.get_mut(&id) else {
                continue;
            };
            match &connection.sink {
                // Its task takes the count.
                Sink::Queue(sender) => {
                    let _ = sender.try_send(Queued::Recount);
                }
                Sink::Socket(_) => self.recount(id, ctx),
            }
        }
    }
}

/// A stream's count, taken afresh.
#[derive(Message)]
#[rtype(result = "()")]
struct Recounted {
    id: u64,
    unread: Unread,
}

impl Handler<Recounted> for Shard {
    type Result = ();

    fn handle(&mut self, recounted: Recounted, ctx: &mut Context<Self>) {
        self.inbox_count(recounted.id, recounted.unread, ctx);
    }
}

impl Shard {
    /// Gives stream `id` a count of its user's; one older than what it has sent is taken
    /// afresh, and comes back here.
    pub(super) fn inbox_count(&mut self, id: u64, unread: Unread, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        self.send_to(id, Queued::Inbox(unread), now, ctx);
    }

    /// Takes stream `id`'s count afresh from the database; it comes back as `Recounted`.
    pub(super) fn recount(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some(connection) = self.streams.get(&id) else {
            return;
        };
        let (tenant_id, store) = (connection.tenant_id, self.store.clone());
        let Ok(user) = UserId::parse(connection.user.as_str()) else {
            return;
        };
        let recount = async move { store.inbox_unread(tenant_id, &user).await };
        ctx.spawn(
            actix::fut::wrap_future(recount).map(
                move |counted, _: &mut Shard, ctx| match counted {
                    Ok(unread) => ctx.notify(Recounted { id, unread }),
                    Err(error) => tracing::error!(%error, "the unread count failed"),
                },
            ),
        );
    }
}
