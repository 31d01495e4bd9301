//! A shard's clock for the streams it writes to: keep-alives and token expiry come from
//! here instead of a timer per stream.
//!
//! Time is counted in ticks of the shard's interval. A deadline is filed under its tick and
//! taken when that tick has passed; a stream that has moved its deadline since (a
//! keep-alive postponed by the events it sent) is simply filed again. Filing costs one
//! entry in a list, so an idle stream holds no timer of its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The tick every shard uses, unless a keep-alive interval asks for a finer one.
const COARSEST_TICK: Duration = Duration::from_secs(1);

pub(super) struct Clock {
    started: Instant,
    tick: Duration,
}

impl Clock {
    /// A clock fine enough to keep `keepalive_every` within half of it.
    pub(super) fn for_keepalive(keepalive_every: Duration) -> Clock {
        let tick = (keepalive_every / 2).clamp(Duration::from_millis(10), COARSEST_TICK);
        Clock {
            started: Instant::now(),
            tick,
        }
    }

    pub(super) fn tick(&self) -> Duration {
        self.tick
    }

    /// Ticks since the shard started.
    pub(super) fn now(&self) -> u64 {
        self.ticks(self.started.elapsed())
    }

    /// How many ticks `span` lasts, rounded up (a deadline never fires early).
    pub(super) fn ticks(&self, span: Duration) -> u64 {
        let tick = self.tick.as_nanos();
        u64::try_from(span.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX)
    }
}

/// Connection ids waiting for a tick.
#[derive(Default)]
pub(super) struct Deadlines {
    due: BTreeMap<u64, Vec<u64>>,
}

impl Deadlines {
    pub(super) fn file(&mut self, tick: u64, id: u64) {
        self.due.entry(tick).or_default().push(id);
    }

    /// Moves every id whose tick is at or before `now` into `out`.
    pub(super) fn take_due(&mut self, now: u64, out: &mut Vec<u64>) {
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > now {
                break;
            }
            out.extend(entry.remove());
        }
    }

    pub(super) fn clear(&mut self) {
        self.due.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_due_once_their_tick_has_passed() {
        let mut deadlines = Deadlines::default();
        deadlines.file(5, 1);
        deadlines.file(3, 2);
        deadlines.file(5, 3);
        let mut due = Vec::new();
        deadlines.take_due(2, &mut due);
        assert!(due.is_empty());
        deadlines.take_due(4, &mut due);
        assert_eq!(due, [2]);
        due.clear();
        deadlines.take_due(9, &mut due);
        assert_eq!(due, [1, 3]);
        due.clear();
        deadlines.take_due(9, &mut due);
        assert!(due.is_empty(), "taken once");
    }

    #[test]
    fn the_tick_keeps_a_keepalive_within_half_its_interval_and_never_fires_early() {
        let clock = Clock::for_keepalive(Duration::from_millis(200));
        assert_eq!(clock.tick(), Duration::from_millis(100));
        assert_eq!(clock.ticks(Duration::from_millis(250)), 3);
        assert_eq!(
            Clock::for_keepalive(Duration::from_secs(15)).tick(),
            COARSEST_TICK
        );
    }
}
