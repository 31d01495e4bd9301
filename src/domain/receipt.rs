//! Receipts: the three facts Herald knows of an event with one recipient user — delivered,
//! seen, read — and a fallback, the webhook sent when one of them has not happened in time.
//!
//! Each fact implies the one before it (an event read was seen; one seen was delivered), so
//! the facts answered are the stored ones closed under that rule: `Facts::settled`.

use serde::{Deserialize, Serialize};

use super::{Invalid, ValidationError};

/// One of the three facts, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fact {
    /// A page of the user got the event.
    Delivered,
    /// It was handed to a listener of a visible page, or the app said so.
    Seen,
    /// It was read in the inbox.
    Read,
}

impl Fact {
    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Delivered => "delivered",
            Fact::Seen => "seen",
            Fact::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<Fact> {
        match text {
            "delivered" => Some(Fact::Delivered),
            "seen" => Some(Fact::Seen),
            "read" => Some(Fact::Read),
            _ => None,
        }
    }
}

/// The longest a fallback waits: a week.
pub const MAX_FALLBACK_SECS: i64 = 604_800;

/// A publish's `fallback`: send `notification.unseen` for each recipient for whom `unless`
/// has not happened `after_secs` after the publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    pub after_secs: i64,
    pub unless: Fact,
}

impl Fallback {
    /// Checks the two fields as they were sent (`unless` defaults to `seen`); `inbox` says
    /// whether the event is an inbox item, without which it can never be read.
    pub fn parse(
        after_secs: Option<i64>,
        unless: Option<&str>,
        inbox: bool,
    ) -> Result<Fallback, ValidationError> {
        let invalid = |message: &str| ValidationError::new(Invalid::Fallback, message);
        let after_secs = after_secs.ok_or_else(|| invalid("`fallback.after_secs` is required"))?;
        if !(1..=MAX_FALLBACK_SECS).contains(&after_secs) {
            return Err(invalid(
                "`fallback.after_secs` is a whole number of seconds from 1 to 604800",
            ));
        }
        let unless = match unless {
            None => Fact::Seen,
            Some(text) => Fact::parse(text).ok_or_else(|| {
                invalid("`fallback.unless` is one of \"delivered\", \"seen\", \"read\"")
            })?,
        };
        if unless == Fact::Read && !inbox {
            return Err(invalid(
                "`fallback.unless: \"read\"` goes with `inbox: true`: only an inbox item is read",
            ));
        }
        Ok(Fallback { after_secs, unless })
    }
}

/// When each fact happened, as far as Herald knows (Unix milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub delivered_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub read_at: Option<i64>,
}

impl Facts {
    /// The facts with each one's implications: read implies seen, seen implies delivered,
    /// each no later than the fact that implies it.
    pub fn settled(self) -> Facts {
        let earliest = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let seen_at = earliest(self.seen_at, self.read_at);
        Facts {
            delivered_at: earliest(self.delivered_at, seen_at),
            seen_at,
            read_at: self.read_at,
        }
    }

    /// Whether `fact` has happened (of the settled facts).
    pub fn has(&self, fact: Fact) -> bool {
        let settled = self.settled();
        match fact {
            Fact::Delivered => settled.delivered_at.is_some(),
            Fact::Seen => settled.seen_at.is_some(),
            Fact::Read => settled.read_at.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fact_implies_the_ones_before_it_no_later() {
        let read = Facts {
            read_at: Some(30),
            ..Facts::default()
        };
        assert!(read.has(Fact::Delivered) && read.has(Fact::Seen) && read.has(Fact::Read));
        assert_eq!(
            read.settled(),
            Facts {
                delivered_at: Some(30),
                seen_at: Some(30),
                read_at: Some(30)
            }
        );
        let seen_then_read = Facts {
            delivered_at: Some(40),
            seen_at: Some(20),
            read_at: Some(30),
        }
        .settled();
        assert_eq!(seen_then_read.delivered_at, Some(20));
        assert_eq!(seen_then_read.seen_at, Some(20));
        let delivered = Facts {
            delivered_at: Some(5),
            ..Facts::default()
        };
        assert!(delivered.has(Fact::Delivered) && !delivered.has(Fact::Seen));
        assert!(!Facts::default().has(Fact::Delivered));
    }

    #[test]
    fn a_fallback_waits_one_second_to_a_week_for_a_known_fact() {
        assert_eq!(
            Fallback::parse(Some(60), None, false).unwrap(),
            Fallback {
                after_secs: 60,
                unless: Fact::Seen
            }
        );
        assert!(Fallback::parse(Some(1), Some("delivered"), false).is_ok());
        assert!(Fallback::parse(Some(MAX_FALLBACK_SECS), Some("read"), true).is_ok());
        for (after, unless, inbox) in [
            (None, None, false),
            (Some(0), None, false),
            (Some(MAX_FALLBACK_SECS + 1), None, false),
            (Some(-5), None, false),
            (Some(10), Some("opened"), false),
            (Some(10), Some("read"), false),
        ] {
            let error = Fallback::parse(after, unless, inbox).unwrap_err();
            assert_eq!(error.kind, Invalid::Fallback, "{after:?} {unless:?}");
        }
    }
}
