//! Tenants in the store: create, read, change, remove.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr,
};

use super::entities::tenant;
use super::{Store, StoreError};
use crate::domain::keys::random_token;
use crate::domain::limits::TenantLimits;
use crate::domain::now_ms;
use crate::domain::tenant::{NewTenant, Retention, Tenant, TenantPatch};

impl TryFrom<tenant::Model> for Tenant {
    type Error = StoreError;

    fn try_from(model: tenant::Model) -> Result<Self, StoreError> {
        let allowed_origins = serde_json::from_str(&model.allowed_origins).map_err(|e| {
            StoreError::Corrupt(format!("tenant {} allowed_origins: {e}", model.slug))
        })?;
        let limits = serde_json::from_str(&model.limits)
            .map_err(|e| StoreError::Corrupt(format!("tenant {} limits: {e}", model.slug)))?;
        Ok(Tenant {
            id: model.id,
            slug: model.slug,
            name: model.name,
            allowed_origins,
            retention: Retention {
                max_age_secs: model.retention_max_age_secs,
                max_events: model.retention_max_events,
            },
            limits,
            epoch: model.epoch,
            created_at: model.created_at,
        })
    }
}

fn limits_json(limits: &TenantLimits) -> String {
    serde_json::to_string(limits).unwrap_or_else(|_| "{}".into())
}

fn origins_json(origins: &[String]) -> String {
    serde_json::Value::from(origins.to_vec()).to_string()
}

/// A new log epoch: 12 random base64url characters.
pub(super) fn new_epoch() -> String {
    // base64url may contain '-' and '_', which the id syntax `<epoch>-<seq>` keeps out of
    // epochs; hex-like alphanumerics only.
    random_token(12)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect()
}

impl Store {
    /// Creates a tenant with `limits` (its own, as read from `new.limits`); `Ok(None)` when
    /// the slug is taken.
    pub async fn create_tenant(
        &self,
        new: &NewTenant,
        limits: &TenantLimits,
    ) -> Result<Option<Tenant>, StoreError> {
        let model = tenant::ActiveModel {
            slug: Set(new.slug.clone()),
            name: Set(new.name.clone().unwrap_or_else(|| new.slug.clone())),
            allowed_origins: Set(origins_json(&new.allowed_origins)),
            retention_max_age_secs: Set(new.retention.max_age_secs),
            retention_max_events: Set(new.retention.max_events),
            epoch: Set(new_epoch()),
            next_seq: Set(1),
            pruned_seq: Set(0),
            created_at: Set(now_ms()),
            limits: Set(limits_json(limits)),
            ..Default::default()
        };
        let txn = self.begin_write().await?;
        match model.insert(&txn).await {
            Ok(model) => {
                txn.commit().await?;
                Ok(Some(model.try_into()?))
            }
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.list_tenants_after(None, None).await
    }

    /// Tenants in slug order after `after`, at most `limit` (all when `None`).
    pub async fn list_tenants_after(
        &self,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<Tenant>, StoreError> {
        let mut query = tenant::Entity::find().order_by_asc(tenant::Column::Slug);
        if let Some(after) = after {
            query = query.filter(tenant::Column::Slug.gt(after));
        }
        query
            .limit(limit)
            .all(self.reader())
            .await?
            .into_iter()
            .map(Tenant::try_from)
            .collect()
    }

    pub async fn count_tenants(&self) -> Result<u64, StoreError> {
        Ok(tenant::Entity::find().count(self.reader()).await?)
    }

    pub async fn tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug))
            .one(self.reader())
            .await?
            .map(Tenant::try_from)
            .transpose()
    }

    /// Applies `patch`, with `limits` (the tenant's own, the patch's `limits` applied)
    /// when it changes them; `Ok(None)` when there is no such tenant.
    pub async fn update_tenant(
        &self,
        slug: &str,
        patch: &TenantPatch,
        limits: Option<&TenantLimits>,
    ) -> Result<Option<Tenant>, StoreError> {
        let txn = self.begin_write().await?;
        let Some(existing) = tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug))
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        let mut model: tenant::ActiveModel = existing.into();
        if let Some(name) = &patch.name {
            model.name = Set(name.clone());
        }
        if let Some(origins) = &patch.allowed_origins {
            model.allowed_origins = Set(origins_json(origins));
        }
        if let Some(retention) = &patch.retention {
            model.retention_max_age_secs = Set(retention.max_age_secs);
            model.retention_max_events = Set(retention.max_events);
        }
        if let Some(limits) = limits {
            model.limits = Set(limits_json(limits));
        }
        let updated = model.update(&txn).await?;
        txn.commit().await?;
        Ok(Some(updated.try_into()?))
    }

    /// Removes a tenant with its keys, events and idempotency records; `false` when there
    /// was no such tenant.
    pub async fn delete_tenant(&self, slug: &str) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let deleted = tenant::Entity::delete_many()
            .filter(tenant::Column::Slug.eq(slug))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(deleted > 0)
    }
}
