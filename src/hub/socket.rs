//! A stream socket owned by its shard: the shard writes each event's shared frame straight
//! to it, without a task, a queue or a buffer of the stream's own.
//!
//! Writes never block. What the kernel does not take at once waits in a small backlog of
//! the shared frames (no copy) and goes out when the socket becomes writable again; a
//! backlog longer than the stream's queue capacity means a peer that does not keep up,
//! and the shard closes it as it closes any slow stream. Bytes the peer sends are read
//! and dropped (an SSE client sends none; pipelined requests get no answer), and the
//! peer's close is seen on the next readiness.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

/// Chunks written in one system call at most.
const SLICES_PER_WRITE: usize = 64;

pub(super) struct StreamSocket {
    socket: TcpStream,
    /// Frames the kernel has not taken yet, oldest first (the first maybe partly sent).
    backlog: VecDeque<Bytes>,
    /// The kernel refused the last write: wait for the socket to become writable.
    blocked: bool,
}

/// Why a socket can no longer be written to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The peer is gone or the socket failed.
    Gone,
    /// More is waiting than the stream may hold: the peer does not keep up.
    Slow,
}

impl StreamSocket {
    pub(super) fn new(socket: TcpStream) -> StreamSocket {
        StreamSocket {
            socket,
            backlog: VecDeque::new(),
            blocked: false,
        }
    }

    pub(super) fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    pub(super) fn is_backlogged(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Writes `frames` after anything still waiting, keeping what the kernel does not take.
    pub(super) fn send(
        &mut self,
        frames: impl IntoIterator<Item = Bytes>,
        backlog_limit: usize,
    ) -> Result<(), Stop> {
        self.backlog.extend(frames);
        if !self.blocked {
            self.flush()?;
        }
        if self.backlog.len() > backlog_limit {
            return Err(Stop::Slow);
        }
        Ok(())
    }

    /// The socket can take more: write what waits.
    pub(super) fn writable(&mut self) -> Result<(), Stop> {
        self.blocked = false;
        self.flush()
    }

    /// Writes as much of the backlog as the kernel takes now.
    fn flush(&mut self) -> Result<(), Stop> {
        while !self.backlog.is_empty() {
            let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
            let mut count = 0;
            for (slice, frame) in slices.iter_mut().zip(&self.backlog) {
                *slice = IoSlice::new(frame);
                count += 1;
            }
            let written = match self.socket.write_vectored(&slices[..count]) {
                Ok(0) => return Err(Stop::Gone),
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return Ok(());
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Stop::Gone),
            };
            self.consume(written);
        }
        Ok(())
    }

    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.backlog.front_mut() else {
                return;
            };
            if front.len() > written {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.backlog.pop_front();
        }
    }

    /// Reads and drops whatever the peer sent; `Err` once it has closed its side.
    pub(super) fn discard_input(&mut self, scratch: &mut [u8]) -> Result<(), Stop> {
        loop {
            match self.socket.read(scratch) {
                Ok(0) => return Err(Stop::Gone),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Stop::Gone),
            }
        }
    }

    /// Ends the stream: what the kernel holds still goes out, then the peer sees the end.
    pub(super) fn close(self) {
        let _ = self.socket.shutdown(Shutdown::Write);
    }
}
