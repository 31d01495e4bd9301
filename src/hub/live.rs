//! The live half of a stream, as rules without I/O: what bytes go out now, and whether the
//! stream is over.
//!
//! Both transports run it — a stream served by its own task (`hub::connection`, which
//! writes to actix-web's body) and a socket its shard owns (`hub::shard`, which writes
//! without blocking) — so a stream says the same on either. A transport gives it what
//! reaches the stream (its queue's entries, a keep-alive deadline, its token's expiry) and
//! writes out what it pushes; the transport's own clock is `T` (a tokio `Instant` in a
//! task, the shard's tick in a shard).
//!
//! The rules: a stream sends each event once, in order — it drops every seq at or below
//! the last it sent (the replay may have sent it already); it keeps its user's unread
//! count (`hub::inbox`) and sends `event: inbox` after the frames that change it; a
//! keep-alive goes out a keep-alive interval after the last thing sent, unless bytes are
//! still on their way; and a stream whose session is over ends with its last frame.

use std::ops::Add;

use bytes::Bytes;

use super::Queued;
use super::inbox::{InboxCount, Stale};
use crate::domain::inbox::Unread;
use crate::sse;

pub struct LiveStream<T> {
    /// The highest seq sent so far (or the position the stream started from).
    last_seq: i64,
    /// The user's unread count as the stream last sent it; `None` until it has been
    /// counted after the replay.
    inbox: Option<InboxCount>,
    /// When the stream last sent something.
    last_sent: T,
}

/// What a stream does after taking an entry of its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// It goes on.
    Live,
    /// It goes on, and its user's unread count must be taken afresh (and given back as
    /// `Queued::Inbox`): the one it got is older than what it has sent.
    Recount,
    /// It is over; its last frame is the last pushed.
    Over,
}

impl<T: Copy + Ord> LiveStream<T> {
    /// A stream that has sent everything up to `last_seq`, the last of it at `now`.
    pub fn new(last_seq: i64, now: T) -> LiveStream<T> {
        LiveStream {
            last_seq,
            inbox: None,
            last_sent: now,
        }
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// Whether the user's unread count has been sent.
    pub fn is_counted(&self) -> bool {
        self.inbox.is_some()
    }

    /// The replay sent everything up to `seq`, at `now`.
    pub fn replayed(&mut self, seq: i64, now: T) {
        self.last_seq = seq;
        self.last_sent = now;
    }

    /// The user's unread count, taken after the replay: its `event: inbox` frame, or
    /// `Stale` if it was taken before what the replay sent (take it again).
    pub fn start_count(&mut self, unread: Unread, now: T) -> Result<Bytes, Stale> {
        let count = InboxCount::start(unread, self.last_seq)?;
        self.inbox = Some(count);
        self.last_sent = now;
        Ok(count.frame())
    }

    /// Takes one entry of the stream's queue at `now`, pushing what goes out to `out`.
    pub fn take(&mut self, entry: Queued, now: T, out: &mut Vec<Bytes>) -> Taken {
        match entry {
            Queued::One(frame) => self.send_fresh(std::iter::once(frame), now, out),
            Queued::Many(frames) => self.send_fresh(frames, now, out),
            Queued::End(last) => {
                out.push(last);
                Taken::Over
            }
            Queued::Recount if self.inbox.is_some() => Taken::Recount,
            Queued::Recount => Taken::Live,
            Queued::Inbox(unread) => {
                let Some(count) = &mut self.inbox else {
                    return Taken::Live;
                };
                match count.update(unread, self.last_seq) {
                    Ok(true) => {
                        out.push(count.frame());
                        self.last_sent = now;
                        Taken::Live
                    }
                    Ok(false) => Taken::Live,
                    Err(Stale) => Taken::Recount,
                }
            }
        }
    }

    /// The frames the stream has not sent yet, then the unread count if they change it.
    fn send_fresh(
        &mut self,
        frames: impl IntoIterator<Item = super::LiveFrame>,
        now: T,
        out: &mut Vec<Bytes>,
    ) -> Taken {
        let before = out.len();
        let mut counted = false;
        for frame in frames {
            if frame.seq <= self.last_seq {
                continue;
            }
            self.last_seq = frame.seq;
            if let Some(count) = &mut self.inbox {
                counted |= count.sending(&frame);
            }
            out.push(frame.bytes);
        }
        if let Some(count) = self.inbox.filter(|_| counted) {
            out.push(count.frame());
        }
        if out.len() > before {
            self.last_sent = now;
        }
        Taken::Live
    }

    /// A keep-alive deadline came at `now`: pushes a keep-alive if one is due, and answers
    /// when the next deadline is. Nothing goes out while `backlogged` (bytes are on their
    /// way already, which is what a keep-alive is for).
    pub fn idle<S: Copy>(&mut self, now: T, every: S, backlogged: bool, out: &mut Vec<Bytes>) -> T
    where
        T: Add<S, Output = T>,
    {
        let due = self.last_sent + every;
        if due > now {
            // Something went out since the deadline was set: wait from there.
            return due;
        }
        if !backlogged {
            out.push(sse::keep_alive());
            self.last_sent = now;
        }
        now + every
    }

    /// The stream's token has run out: pushes its last frame; the stream is over.
    pub fn expired(&mut self, out: &mut Vec<Bytes>) -> Taken {
        out.push(sse::session_expired(sse::TOKEN_EXPIRED));
        Taken::Over
    }

    /// The same stream on another clock, its last send at `now` there (a stream handed
    /// from its task to its shard).
    pub fn on_clock<U>(self, now: U) -> LiveStream<U> {
        LiveStream {
            last_seq: self.last_seq,
            inbox: self.inbox,
            last_sent: now,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The same script of queue entries, keep-alive ticks and expiry through both
    //! transports — a task on (paused) tokio time, a shard-owned socket on the shard's
    //! ticks — must put the same bytes on the wire.

    use std::io::Read;
    use std::time::Duration;

    use futures_util::FutureExt;

    use super::*;
    use crate::hub::HubStats;
    use crate::hub::LiveFrame;
    use crate::hub::connection::{LiveChunk, LiveTask};
    use crate::hub::deadlines::Deadlines;
    use crate::hub::sink::{Ending, OwnedStream, Sent, Sink};
    use crate::hub::socket::StreamSocket;

    const TICK: Duration = Duration::from_millis(100);
    const KEEPALIVE_TICKS: u64 = 10;
    const EXPIRY_TICK: u64 = 50;

    enum Step {
        Entry(Queued),
        /// This many ticks pass.
        Wait(u64),
    }

    fn frame(seq: i64, inbox: bool) -> LiveFrame {
        LiveFrame {
            seq,
            bytes: Bytes::from(format!("data: {seq}\n\n")),
            inbox,
        }
    }

    fn unread(count: i64, as_of_seq: i64, version: i64) -> Unread {
        Unread {
            count,
            as_of_seq,
            version,
            pruned_seq: 0,
        }
    }

    /// The count a recount finds.
    const RECOUNTED: Unread = Unread {
        count: 0,
        as_of_seq: 7,
        version: 2,
        pruned_seq: 0,
    };

    fn script() -> Vec<Step> {
        vec![
            // 4 was replayed already; 6 is an inbox item.
            Step::Entry(Queued::Many(vec![
                frame(4, true),
                frame(6, true),
                frame(7, false),
            ])),
            Step::Entry(Queued::One(frame(7, false))),
            Step::Wait(3),
            // A read elsewhere; then one counted before the stream sent 7: taken afresh.
            Step::Entry(Queued::Inbox(unread(1, 7, 1))),
            Step::Entry(Queued::Inbox(unread(0, 6, 2))),
            Step::Wait(25),
            Step::Entry(Queued::One(frame(8, true))),
            Step::Wait(30),
        ]
    }

    /// A stream that has sent up to 5, its user's count (2) taken there.
    fn caught_up<T: Copy + Ord>(now: T) -> LiveStream<T> {
        let mut live = LiveStream::new(5, now);
        live.start_count(unread(2, 5, 0), now).unwrap();
        live
    }

    async fn through_a_task() -> Vec<u8> {
        let (sender, mut queue) = tokio::sync::mpsc::channel(16);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let live = caught_up(tokio::time::Instant::now());
        let mut task = LiveTask::new(
            live,
            TICK * KEEPALIVE_TICKS as u32,
            TICK * EXPIRY_TICK as u32,
            shutdown,
        );
        let mut wire = Vec::new();
        let mut over = false;
        let mut drain = |task: &mut LiveTask, queue: &mut tokio::sync::mpsc::Receiver<Queued>| {
            while let Some(next) = task.next(queue).now_or_never() {
                match next {
                    LiveChunk::Bytes(chunk) => wire.extend_from_slice(&chunk),
                    LiveChunk::Recount => {
                        if let Some(frame) = task.recounted(RECOUNTED) {
                            wire.extend_from_slice(&frame);
                        }
                    }
                    LiveChunk::Over => {
                        over = true;
                        return;
                    }
                }
            }
        };
        for step in script() {
            match step {
                Step::Entry(entry) => {
                    sender.try_send(entry).unwrap();
                    drain(&mut task, &mut queue);
                }
                Step::Wait(ticks) => {
                    for _ in 0..ticks {
                        tokio::time::advance(TICK).await;
                        drain(&mut task, &mut queue);
                    }
                }
            }
        }
        assert!(over, "the task's stream expired");
        wire
    }

    fn through_a_shard() -> Vec<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut sink = Sink::Socket(OwnedStream {
            socket: StreamSocket::new(mio::net::TcpStream::from_std(socket)),
            live: caught_up(tokio::time::Instant::now()).on_clock(0),
        });
        let stats = HubStats::default();
        let mut out = Vec::new();
        let mut keepalives = Deadlines::default();
        keepalives.file(KEEPALIVE_TICKS, 1);
        let mut now = 0;
        let mut over = false;
        for step in script() {
            match step {
                Step::Entry(entry) => match sink.take(entry, now, &stats, 16, &mut out) {
                    Sent::Live => {}
                    Sent::Recount => {
                        let sent = sink.take(Queued::Inbox(RECOUNTED), now, &stats, 16, &mut out);
                        assert_eq!(sent, Sent::Live);
                    }
                    Sent::Ended(ending) => panic!("ended: {ending:?}"),
                },
                Step::Wait(ticks) => {
                    let Sink::Socket(owned) = &mut sink else {
                        unreachable!()
                    };
                    // As the shard's tick: the expiry first, then keep-alives due.
                    for _ in 0..ticks {
                        now += 1;
                        if over {
                            continue;
                        }
                        if now == EXPIRY_TICK {
                            owned.expired(&mut out);
                            over = true;
                            continue;
                        }
                        let mut due = Vec::new();
                        keepalives.take_due(now, &mut due);
                        for id in due {
                            let next = owned.idle(now, KEEPALIVE_TICKS, &mut out);
                            assert_ne!(next, Err(Ending::Gone));
                            keepalives.file(next.unwrap(), id);
                        }
                    }
                }
            }
        }
        assert!(over, "the owned stream expired");
        let Sink::Socket(owned) = sink else {
            unreachable!()
        };
        owned.socket.close();
        let mut wire = Vec::new();
        peer.read_to_end(&mut wire).unwrap();
        wire
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_and_a_shard_put_the_same_bytes_on_the_wire() {
        let from_task = through_a_task().await;
        let from_shard = through_a_shard();
        let keepalive = sse::keep_alive();
        let expected: Vec<u8> = [
            &b"data: 6\n\ndata: 7\n\n"[..],
            &sse::inbox(3),
            &sse::inbox(1),
            &sse::inbox(0),
            &keepalive,
            &keepalive,
            b"data: 8\n\n",
            &sse::inbox(1),
            &keepalive,
            &keepalive,
            &sse::session_expired(sse::TOKEN_EXPIRED),
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&from_task),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(
            String::from_utf8_lossy(&from_shard),
            String::from_utf8_lossy(&expected)
        );
    }
}
