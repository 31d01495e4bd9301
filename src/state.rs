//! What every request handler can reach: the settings, the store, the event log, the hub
//! and, with several nodes, the broker.
//!
//! It sits below the routes and the credential extractors that read it, and above the
//! parts it holds; `startup` builds it once and hands it to actix-web.

use std::sync::Arc;

use crate::broker::RedisBroker;
use crate::config::Settings;
use crate::domain::keys::AdminToken;
use crate::domain::names::UserId;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::limits::PublishBudget;
use crate::limits::usage::UsageMeter;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::store::credentials::Credentials;
use crate::store::inbox::Unread;
use crate::store::log::EventLog;

pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub log: EventLog,
    pub hub: Hub,
    /// Present when this node runs with others (`redis.url`).
    pub broker: Option<RedisBroker>,
    /// Tenants and signing keys as streams and sessions read them (kept briefly).
    pub credentials: Credentials,
    /// Each tenant's publish budget: this node's, or the deployment's.
    pub budget: PublishBudget,
    /// What each tenant does on this node.
    pub usage: Arc<UsageMeter>,
    pub admin_token: AdminToken,
    /// Turns true when Herald starts shutting down: open streams end at once.
    pub shutdown: Shutdown,
}

impl AppState {
    /// Ends the tenant's open streams — those the signing key `key_id` vouched for, or all
    /// of them — on this node and, through the broker, on every other.
    /// What was kept about the tenant is dropped with them.
    pub fn end_streams(&self, tenant_id: i64, key_id: Option<&str>, reason: &str) {
        self.credentials.forget_tenant(tenant_id);
        self.hub.end_streams(tenant_id, key_id, reason);
        if let Some(broker) = &self.broker {
            broker.end_streams(tenant_id, key_id, reason);
        }
    }

    /// A read or unread changed the user's unread count: their streams on every node say
    /// so.
    pub fn inbox_changed(&self, tenant_id: i64, user: &UserId, unread: Unread) {
        self.hub.inbox_changed(tenant_id, user, unread);
        if let Some(broker) = &self.broker {
            broker.inbox_changed(tenant_id, user, unread);
        }
    }

    /// Retention removed some of the tenant's inbox items: streams on every node take their
    /// counts afresh.
    pub fn inbox_pruned(&self, tenant_id: i64) {
        self.hub.inbox_pruned(tenant_id);
        if let Some(broker) = &self.broker {
            broker.inbox_pruned(tenant_id);
        }
    }

    /// The tenant's settings changed: every node drops what it kept about it.
    pub fn tenant_changed(&self, tenant_id: i64) {
        self.credentials.forget_tenant(tenant_id);
        if let Some(broker) = &self.broker {
            broker.tenant_changed(tenant_id);
        }
    }

    /// The tenant a stream or a session is for, or the API's 404 (see `Credentials`).
    pub async fn stream_tenant(&self, slug: &str) -> Result<Tenant, ApiError> {
        self.credentials
            .tenant(slug)
            .await?
            .ok_or_else(|| ApiError::tenant_not_found(slug))
    }

    /// The tenant with this slug, or the API's 404.
    pub async fn tenant(&self, slug: &str) -> Result<Tenant, ApiError> {
        self.store
            .tenant(slug)
            .await?
            .ok_or_else(|| ApiError::tenant_not_found(slug))
    }
}
