//! The sockets a shard owns (handed over by their tasks: `handover`): the shard writes
//! their frames, sends their keep-alives and their `session-expired` from the shard's clock
//! (`tick`), learns of a peer leaving from the shard's poller (`poll_sockets`), and closes
//! them when Herald stops.

use actix::{Context, StreamHandler};

use super::{Shard, ShardStream};
use crate::hub::reactor::{Reactor, SocketEvent};
use crate::hub::sink::{Ending, OwnedStream, Sink};

impl Shard {
    /// Keep-alives and expiries that have come due.
    pub(super) fn tick(&mut self) {
        let now = self.clock.now();
        let mut due = Vec::new();
        self.expiries.take_due(now, &mut due);
        for id in due.drain(..) {
            if let Some(owned) = owned(&mut self.streams, id) {
                owned.expired(&mut self.out);
                self.end(id, Ending::Over);
            }
        }
        self.keepalives.take_due(now, &mut due);
        for id in due.drain(..) {
            let Some(owned) = owned(&mut self.streams, id) else {
                continue;
            };
            match owned.idle(now, self.keepalive_ticks, &mut self.out) {
                Ok(next) => self.keepalives.file(next, id),
                Err(ending) => self.end(id, ending),
            }
        }
    }

    /// Sockets that have become readable, writable or closed.
    pub(super) fn poll_sockets(&mut self) {
        let mut ready = Vec::new();
        loop {
            let taken = self.reactor.ready(&mut ready);
            for SocketEvent {
                id,
                readable,
                writable,
                closed,
            } in ready.drain(..)
            {
                let Some(owned) = owned(&mut self.streams, id) else {
                    continue;
                };
                let mut outcome = Ok(());
                if readable || closed {
                    outcome = owned.socket.discard_input(&mut self.scratch);
                }
                if outcome.is_ok() && writable {
                    outcome = owned.socket.writable();
                }
                if let Err(stop) = outcome {
                    self.end(id, stop.into());
                }
            }
            if !Reactor::full(taken) {
                return;
            }
        }
    }

    /// Herald is stopping: every owned stream ends now (queues end with their tasks).
    pub(super) fn stop_streams(&mut self) {
        self.stopping = true;
        let owned: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, connection)| matches!(connection.sink, Sink::Socket(_)))
            .map(|(&id, _)| id)
            .collect();
        for id in owned {
            self.end(id, Ending::Over);
        }
        self.keepalives.clear();
        self.expiries.clear();
    }
}

/// Stream `id`, if the shard owns its socket.
fn owned(
    streams: &mut std::collections::HashMap<u64, ShardStream>,
    id: u64,
) -> Option<&mut OwnedStream> {
    match &mut streams.get_mut(&id)?.sink {
        Sink::Socket(owned) => Some(owned),
        Sink::Queue(_) => None,
    }
}

/// The poller has something ready.
impl StreamHandler<()> for Shard {
    fn handle(&mut self, (): (), _: &mut Context<Self>) {
        self.poll_sockets();
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        tracing::error!("stopped watching stream sockets");
    }
}
