//! A stream's live unread count: the `event: inbox` a stream gets after its replay and
//! whenever its user's count changes, kept exact without asking the database per event.
//!
//! A count is always taken at a point of the log (`Unread::as_of_seq`: it counts every item
//! up to that seq) and after a number of the user's read and unread requests (`version`:
//! they are done one at a time per user, so it orders them). From there the stream counts
//! for itself: each inbox item it is sent with a seq above that point is one more unread
//! item (new items are unread; one read before it reached the stream was read by a
//! request whose count comes with a later version). A read or unread anywhere sends the
//! user's streams the count it answered; a stream takes it if it is of a later request
//! than the one it holds — unless the stream has already sent items after that count's
//! point: then the stream knows more than the count, and has it taken afresh (`Stale`),
//! which can only be at a point at or after everything it has sent.

use bytes::Bytes;

use super::LiveFrame;
use crate::domain::inbox::Unread;
use crate::sse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCount {
    unread: i64,
    as_of_seq: i64,
    version: i64,
    pruned_seq: i64,
}

/// A count taken before items this stream has sent: take it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale;

impl InboxCount {
    /// The count a stream starts from, taken after it has sent everything up to `sent_seq`.
    pub fn start(unread: Unread, sent_seq: i64) -> Result<InboxCount, Stale> {
        if unread.as_of_seq < sent_seq {
            return Err(Stale);
        }
        Ok(InboxCount {
            unread: unread.count,
            as_of_seq: unread.as_of_seq,
            version: unread.version,
            pruned_seq: unread.pruned_seq,
        })
    }

    /// The stream is sending `frame`: true when it is one more unread item.
    pub fn sending(&mut self, frame: &LiveFrame) -> bool {
        if !frame.inbox || frame.seq <= self.as_of_seq {
            return false;
        }
        self.unread += 1;
        self.as_of_seq = frame.seq;
        true
    }

    /// A count answered to a read or unread, or taken afresh; the stream has sent
    /// everything up to `sent_seq`. True when the count changed.
    pub fn update(&mut self, unread: Unread, sent_seq: i64) -> Result<bool, Stale> {
        let new = [unread.version, unread.pruned_seq, unread.as_of_seq];
        let held = [self.version, self.pruned_seq, self.as_of_seq];
        if new.iter().zip(&held).all(|(new, held)| new <= held) {
            // Taken no later than the held one (notices may cross): nothing new.
            return Ok(false);
        }
        if new.iter().zip(&held).any(|(new, held)| new < held) {
            // Each knows something the other does not (a read and a prune crossed).
            return Err(Stale);
        }
        let taken = InboxCount::start(unread, sent_seq)?;
        let changed = taken.unread != self.unread;
        *self = taken;
        Ok(changed)
    }

    /// The `event: inbox` frame for this count.
    pub fn frame(&self) -> Bytes {
        sse::inbox(self.unread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: i64, inbox: bool) -> LiveFrame {
        LiveFrame {
            seq,
            bytes: Bytes::new(),
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

    #[test]
    fn items_after_the_count_add_to_it_and_counts_before_what_was_sent_are_taken_again() {
        // Counted at 10 after sending up to 8: items up to 10 are in it.
        let mut count = InboxCount::start(unread(3, 10, 0), 8).unwrap();
        assert!(!count.sending(&frame(9, true)));
        assert!(!count.sending(&frame(11, false)));
        assert!(count.sending(&frame(12, true)));
        assert_eq!(count.unread, 4);
        // The first read, counted at 12 after the stream sent 12: taken.
        assert_eq!(count.update(unread(1, 12, 1), 12), Ok(true));
        // The same count again: nothing new.
        assert_eq!(count.update(unread(1, 12, 1), 12), Ok(false));
        // The second read, counted at 13, but the stream has sent 14 since: taken again.
        assert!(count.sending(&frame(14, true)));
        assert_eq!(count.update(unread(0, 13, 2), 14), Err(Stale));
        assert_eq!(count.unread, 2);
        // Taken afresh at 20; the third and fourth reads' counts arrive crossed, at one point.
        assert_eq!(count.update(unread(1, 20, 2), 14), Ok(true));
        assert_eq!(count.update(unread(3, 20, 4), 14), Ok(true));
        assert_eq!(count.update(unread(2, 20, 3), 14), Ok(false));
        assert_eq!(count.unread, 3);
        assert_eq!(InboxCount::start(unread(0, 5, 0), 6), Err(Stale));
        // Retention removed items: a count taken after it is newer, even at the same head.
        let pruned = Unread {
            pruned_seq: 15,
            ..unread(2, 20, 4)
        };
        assert_eq!(count.update(pruned, 14), Ok(true));
        // A read counted before the prune, and the count after it: each misses the other.
        assert_eq!(count.update(unread(1, 21, 5), 14), Err(Stale));
    }
}
