//! The one error type for input that breaks Herald's rules.

/// What kind of rule was broken; `crate::error` maps each kind to a status and a stable
/// error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The body is JSON but not of the documented shape.
    Body,
    EmptyBatch,
    TooManyEvents,
    TooManyRecipients,
    Target,
    User,
    Topic,
    EventType,
    DataTooLarge,
    Slug,
    Origin,
    Retention,
    Name,
    Algorithm,
    PublicKey,
    Cursor,
    Limit,
    IdempotencyKey,
    /// A tenant's `limits`.
    Limits,
    /// `inbox` where it cannot be, or an inbox request of the wrong shape.
    Inbox,
    /// A webhook endpoint's `url`.
    WebhookUrl,
    /// A webhook endpoint's `events`.
    WebhookEvents,
    /// A publish's `fallback`.
    Fallback,
    /// A receipts request of the wrong shape.
    Receipts,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub kind: Invalid,
    pub message: String,
    /// For a batch: the index of the first event that broke a rule.
    pub index: Option<usize>,
}

impl ValidationError {
    pub fn new(kind: Invalid, message: impl Into<String>) -> Self {
        ValidationError {
            kind,
            message: message.into(),
            index: None,
        }
    }

    /// The same error, located at event `index` of a batch.
    pub fn at(mut self, index: usize) -> Self {
        self.index = Some(index);
        self.message = format!("events[{index}]: {}", self.message);
        self
    }
}
