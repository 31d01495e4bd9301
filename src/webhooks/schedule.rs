//! When a failed message is due again: the configured schedule of delays after each failed
//! attempt, each jittered by up to a tenth either way so that messages failed together do
//! not come back together, or what the receiver's `Retry-After` asked.

use std::time::Duration;

use rand::Rng;

/// The longest `Retry-After` honoured: a receiver cannot park a message for longer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> RetrySchedule {
        RetrySchedule { delays }
    }

    /// After `attempts` failed attempts, when (Unix ms, from `now_ms`) the message is due
    /// again; `None` when its retries are spent.
    pub fn next(&self, attempts: usize, retry_after: Option<Duration>, now_ms: i64) -> Option<i64> {
        let delay = *self.delays.get(attempts.checked_sub(1)?)?;
        let wait = match retry_after {
            Some(asked) => asked.min(MAX_RETRY_AFTER),
            None => {
                let jitter = rand::rng().random_range(0.9..=1.1);
                delay.mul_f64(jitter)
            }
        };
        Some(now_ms + wait.as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_waits_its_delay_within_a_tenth_until_the_schedule_is_spent() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(5), Duration::from_secs(300)]);
        let first = schedule.next(1, None, 0).unwrap_or_default();
        assert!((4_500..=5_500).contains(&first), "{first}");
        let second = schedule.next(2, None, 0).unwrap_or_default();
        assert!((270_000..=330_000).contains(&second), "{second}");
        assert_eq!(schedule.next(3, None, 0), None);
        assert_eq!(
            schedule.next(1, Some(Duration::from_secs(42)), 0),
            Some(42_000)
        );
    }
}
