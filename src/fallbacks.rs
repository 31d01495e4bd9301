//! The node's fallback timer: one task, whatever the number of pending fallbacks.
//!
//! The timers are rows of the store's due-time index (`store::receipts`), not tasks or
//! timers in memory. The task asks the store to decide whatever is due, a page at a time,
//! then sleeps until the soonest pending one is due — but never longer than `POLL`, since
//! another node may have committed one due sooner. A fallback that fell due while Herald was
//! down is due at start, and fires in the first pass.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::now_ms;
use crate::limits::usage::UsageMeter;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::webhooks::Outbox;

/// The longest the task sleeps between looks at the index.
const POLL: Duration = Duration::from_millis(250);
/// Fallbacks decided per transaction (a `users` publish to a thousand fires in one).
const PAGE: u64 = 1_000;
/// The pause after a failed pass (the database away): the timers wait in it.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

pub struct FallbackTask {
    pub store: Store,
    pub outbox: Outbox,
    /// Where fired fallbacks are counted for the hourly usage.
    pub usage: Arc<UsageMeter>,
}

impl FallbackTask {
    pub async fn run(self, shutdown: Shutdown) {
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        loop {
            let pause = self.pass().await;
            tokio::select! {
                _ = &mut stopping => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Decides what is due, and says how long to sleep before the next look.
    async fn pass(&self) -> Duration {
        loop {
            match self.store.fire_due_fallbacks(PAGE).await {
                Ok(pass) => {
                    for (tenant_id, fired) in &pass.fired_by_tenant {
                        self.usage.fallbacks_fired(*tenant_id, *fired as u64);
                    }
                    if pass.messages {
                        self.outbox.wake();
                    }
                    if (pass.fired + pass.skipped) as u64 == PAGE {
                        continue;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "fallbacks not decided; trying again");
                    return AFTER_FAILURE;
                }
            }
            return match self.store.next_fallback_due().await {
                Ok(Some(due)) => {
                    let wait = u64::try_from(due - now_ms()).unwrap_or(0);
                    POLL.min(Duration::from_millis(wait))
                }
                Ok(None) => POLL,
                Err(_) => AFTER_FAILURE,
            };
        }
    }
}
