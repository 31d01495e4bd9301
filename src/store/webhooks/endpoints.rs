//! A tenant's webhook endpoints: created with a fresh secret, listed, changed, removed,
//! and their secret rotated with an overlap during which the old one signs too.

use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TryIntoModel,
};

use super::super::entities::{tenant, webhook_endpoint, webhook_message};
use super::super::{Store, StoreError};
use super::outbox::{FAILED, PENDING};
use crate::domain::now_ms;
use crate::domain::webhook::{Endpoint, EndpointPatch, Subscription, WebhookSecret, WebhookUrl};

/// Why an endpoint cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("the tenant has {0} webhook endpoints already, as many as its limits allow")]
    TooMany(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TryFrom<webhook_endpoint::Model> for Endpoint {
    type Error = StoreError;

    fn try_from(model: webhook_endpoint::Model) -> Result<Endpoint, StoreError> {
        let corrupt =
            || StoreError::Corrupt(format!("webhook {} events {}", model.id, model.events));
        let names: Vec<String> = serde_json::from_str(&model.events).map_err(|_| corrupt())?;
        let subscription = Subscription::parse(&names).map_err(|_| corrupt())?;
        let previous_secret = match (model.previous_secret, model.previous_until) {
            (Some(secret), Some(until)) => Some((WebhookSecret::from_stored(secret), until)),
            _ => None,
        };
        Ok(Endpoint {
            id: model.id,
            tenant_id: model.tenant_id,
            url: model.url,
            subscription,
            description: model.description,
            secret: WebhookSecret::from_stored(model.secret),
            previous_secret,
            created_at: model.created_at,
            disabled_at: model.disabled_at,
            disabled_reason: model.disabled_reason,
        })
    }
}

fn events_json(subscription: &Subscription) -> String {
    serde_json::Value::from(subscription.names()).to_string()
}

impl Store {
    /// Creates an endpoint with a fresh secret, unless the tenant has `max` already.
    pub async fn create_webhook(
        &self,
        tenant_id: i64,
        url: &WebhookUrl,
        subscription: &Subscription,
        description: &str,
        max: u64,
    ) -> Result<Endpoint, CreateError> {
        let txn = self.begin_write().await.map_err(StoreError::from)?;
        // Concurrent creations of one tenant queue on its row (SQLite has one writer).
        tenant::Entity::find_by_id(tenant_id)
            .lock(LockType::Update)
            .one(&txn)
            .await
            .map_err(StoreError::from)?;
        let existing = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
            .count(&txn)
            .await
            .map_err(StoreError::from)?;
        if existing >= max {
            return Err(CreateError::TooMany(existing));
        }
        let model = webhook_endpoint::ActiveModel {
            id: Set(format!("wh_{}", uuid::Uuid::now_v7().simple())),
            tenant_id: Set(tenant_id),
            url: Set(url.as_str().to_owned()),
            events: Set(events_json(subscription)),
            description: Set(description.to_owned()),
            secret: Set(WebhookSecret::generate().as_str().to_owned()),
            previous_secret: Set(None),
            previous_until: Set(None),
            created_at: Set(now_ms()),
            disabled_at: Set(None),
            disabled_reason: Set(None),
            failing_since: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(StoreError::from)?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(Endpoint::try_from(model)?)
    }

    /// The tenant's endpoints, oldest first.
    pub async fn webhooks(&self, tenant_id: i64) -> Result<Vec<Endpoint>, StoreError> {
        webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(self.reader())
            .await?
            .into_iter()
            .map(Endpoint::try_from)
            .collect()
    }

    /// One endpoint of the tenant's.
    pub async fn webhook(&self, tenant_id: i64, id: &str) -> Result<Option<Endpoint>, StoreError> {
        find(self.reader(), tenant_id, id)
            .await?
            .map(Endpoint::try_from)
            .transpose()
    }

    /// Applies `patch`; `None` if the tenant has no such endpoint.
    pub async fn update_webhook(
        &self,
        tenant_id: i64,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<Option<Endpoint>, StoreError> {
        let txn = self.begin_write().await?;
        let Some(model) = find(&txn, tenant_id, id).await? else {
            return Ok(None);
        };
        let mut active: webhook_endpoint::ActiveModel = model.into();
        if let Some(url) = patch.url {
            active.url = Set(url.as_str().to_owned());
        }
        if let Some(subscription) = &patch.subscription {
            active.events = Set(events_json(subscription));
        }
        if let Some(description) = patch.description {
            active.description = Set(description);
        }
        match patch.disabled {
            Some(false) => {
                active.disabled_at = Set(None);
                active.disabled_reason = Set(None);
                active.failing_since = Set(None);
            }
            Some(true) => {
                let now = now_ms();
                disable(&txn, id, now, "disabled").await?;
                active.disabled_at = Set(Some(now));
                active.disabled_reason = Set(Some("disabled".into()));
            }
            None => {}
        }
        let model = match active.is_changed() {
            true => active.update(&txn).await?,
            false => active.try_into_model()?,
        };
        txn.commit().await?;
        Ok(Some(Endpoint::try_from(model)?))
    }

    /// Removes an endpoint with its messages; `false` if the tenant has no such endpoint.
    pub async fn delete_webhook(&self, tenant_id: i64, id: &str) -> Result<bool, StoreError> {
        let deleted = webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
            .filter(webhook_endpoint::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        Ok(deleted.rows_affected > 0)
    }

    /// A new secret; the one it replaces signs too for `overlap_ms`.
    pub async fn rotate_webhook_secret(
        &self,
        tenant_id: i64,
        id: &str,
        overlap_ms: i64,
    ) -> Result<Option<WebhookSecret>, StoreError> {
        let txn = self.begin_write().await?;
        let Some(model) = find(&txn, tenant_id, id).await? else {
            return Ok(None);
        };
        let secret = WebhookSecret::generate();
        let previous = model.secret.clone();
        let mut active: webhook_endpoint::ActiveModel = model.into();
        active.secret = Set(secret.as_str().to_owned());
        active.previous_secret = Set(Some(previous));
        active.previous_until = Set(Some(now_ms() + overlap_ms));
        active.update(&txn).await?;
        txn.commit().await?;
        Ok(Some(secret))
    }
}

async fn find(
    db: &impl ConnectionTrait,
    tenant_id: i64,
    id: &str,
) -> Result<Option<webhook_endpoint::Model>, StoreError> {
    Ok(webhook_endpoint::Entity::find_by_id(id)
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?)
}

/// Marks an endpoint disabled at `now` (`reason`), and the messages still due to it
/// failed: a disabled endpoint gets nothing until it is enabled again.
pub(super) async fn disable(
    db: &impl ConnectionTrait,
    id: &str,
    now: i64,
    reason: &str,
) -> Result<(), StoreError> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::DisabledAt, Expr::value(now))
        .col_expr(
            webhook_endpoint::Column::DisabledReason,
            Expr::value(reason),
        )
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::DisabledAt.is_null())
        .exec(db)
        .await?;
    webhook_message::Entity::update_many()
        .col_expr(webhook_message::Column::Status, Expr::value(FAILED))
        .col_expr(
            webhook_message::Column::NextAttemptAt,
            Expr::value(Option::<i64>::None),
        )
        .filter(webhook_message::Column::EndpointId.eq(id))
        .filter(webhook_message::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(())
}
