//! What every request handler can reach: the settings, the store, the event log, the hub
//! and the broker to the other nodes.
//!
//! It sits below the routes and the credential extractors that read it, and above the
//! parts it holds; `startup` builds it once and hands it to actix-web.

use std::sync::Arc;

use crate::broker::{Broker, Notice};
use crate::config::Settings;
use crate::domain::inbox::Unread;
use crate::domain::keys::AdminToken;
use crate::domain::log::LogPosition;
use crate::domain::names::UserId;
use crate::domain::tenant::Tenant;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::limits::PublishBudget;
use crate::limits::usage::UsageMeter;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::store::credentials::Credentials;
use crate::store::log::EventLog;
use crate::store::receipts::ReceiptWriter;
use crate::webhooks::Outbox;

pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub log: EventLog,
    /// Browsers' receipts, group committed.
    pub receipts: ReceiptWriter,
    /// The node's webhook workers: woken when this node writes a message.
    pub outbox: Outbox,
    pub hub: Hub,
    /// How this node tells the others (`LocalBroker` when it runs alone).
    pub broker: Arc<dyn Broker>,
    /// Tenants and signing keys as streams and sessions read them (kept briefly).
    pub credentials: Credentials,
    /// Each tenant's publish budget: this node's, or the deployment's.
    pub budget: PublishBudget,
    /// What each tenant does on this node.
    pub usage: Arc<UsageMeter>,
    pub admin_token: AdminToken,
    /// Turns true when Herald starts shutting down: open streams end at once.
    pub shutdown: Shutdown,
    /// What `/metrics` renders.
    pub metrics: crate::metrics::Registry,
}

impl AppState {
    /// Where the tenant's log stands; `404 tenant_not_found` once the tenant is gone.
    pub async fn log_position(&self, tenant: &Tenant) -> Result<LogPosition, ApiError> {
        self.store
            .log_position(tenant.id)
            .await?
            .ok_or_else(|| ApiError::tenant_not_found(&tenant.slug))
    }

    /// Applies `notice` to this node and tells every other node, which apply it alike.
    pub fn notify(&self, notice: Notice) {
        notice.apply(&self.hub, &self.credentials);
        self.broker.publish(notice);
    }

    /// Ends the tenant's open streams — those the signing key `key_id` vouched for, or all
    /// of them — on every node. What was kept about the tenant is dropped with them.
    pub fn end_streams(&self, tenant_id: i64, key_id: Option<&str>, reason: &str) {
        self.notify(Notice::StreamsEnded {
            tenant: tenant_id,
            key_id: key_id.map(str::to_owned),
            reason: reason.to_owned(),
        });
    }

    /// A read or unread changed the user's unread count: their streams on every node say
    /// so.
    pub fn inbox_changed(&self, tenant_id: i64, user: &UserId, unread: Unread) {
        self.notify(Notice::InboxChanged {
            tenant: tenant_id,
            user: user.as_str().to_owned(),
            unread,
        });
    }

    /// Retention removed some of the tenant's inbox items: streams on every node take their
    /// counts afresh.
    pub fn inbox_pruned(&self, tenant_id: i64) {
        self.notify(Notice::InboxPruned { tenant: tenant_id });
    }

    /// The tenant's settings changed: every node drops what it kept about it.
    pub fn tenant_changed(&self, tenant_id: i64) {
        self.notify(Notice::TenantChanged { tenant: tenant_id });
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
