//! What a node does on its own clock: retention every minute (events, webhook messages
//! past `webhooks.keep_deliveries_secs`, hourly usage past 31 days), and each second's usage
//! counts into the tenants' usage rows (and what is left when Herald shuts down).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use crate::domain::now_ms;
use crate::hub::Hub;
use crate::limits::usage::UsageMeter;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::store::Store;
use crate::store::hourly_usage::hour_of;

/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Applies retention every `PRUNE_EVERY`; streams of tenants whose inbox items went take
/// their counts afresh, on every node.
pub fn spawn_pruner(state: web::Data<AppState>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        let default_max_stored = state.settings.tenant_defaults.max_stored_events;
        loop {
            ticks.tick().await;
            match state.store.prune(default_max_stored).await {
                Ok(pruned) => {
                    if pruned.removed > 0 {
                        tracing::info!(removed = pruned.removed, "retention pruned events");
                    }
                    for tenant_id in pruned.inboxes {
                        state.inbox_pruned(tenant_id);
                    }
                }
                Err(error) => tracing::error!(%error, "retention pruning failed"),
            }
            let keep = state.settings.webhooks.keep_deliveries_secs as i64 * 1000;
            match state.store.prune_webhook_messages(now_ms() - keep).await {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::info!(removed, "pruned webhook messages past keep_deliveries_secs")
                }
                Err(error) => tracing::error!(%error, "pruning webhook messages failed"),
            }
            if let Err(error) = state.store.prune_hourly_usage(hour_of(now_ms())).await {
                tracing::error!(%error, "pruning hourly usage failed");
            }
        }
    });
}

/// Adds each second's deliveries and refused publishes to the tenants' usage rows, and
/// what is left when Herald shuts down.
pub fn spawn_usage_flusher(usage: Arc<UsageMeter>, hub: Hub, store: Store, shutdown: Shutdown) {
    let flush = move || {
        let (usage, hub, store) = (usage.clone(), hub.clone(), store.clone());
        async move {
            if let Err(error) = usage.flush(&store, &hub, now_ms()).await {
                tracing::warn!(%error, "usage: cannot write this second's counts; kept for the next");
            }
        }
    };
    tokio::spawn(async move {
        let mut every = tokio::time::interval(USAGE_FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopping = shutdown.wait();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                _ = every.tick() => flush().await,
                () = &mut stopping => break,
            }
        }
        flush().await;
    });
}

/// How often usage counts reach the database.
const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(1);
