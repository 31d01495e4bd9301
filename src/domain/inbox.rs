//! The inbox's vocabulary that crosses nodes: a user's unread count and when it was taken.

use serde::{Deserialize, Serialize};

/// A user's unread count, and when it was taken: at which head of the log, after how many
/// read or unread requests of the user, and after retention had removed what up to which
/// seq. Each of the three only grows, so of two counts the later is at least as far on in
/// all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unread {
    pub count: i64,
    pub as_of_seq: i64,
    pub version: i64,
    pub pruned_seq: i64,
}
