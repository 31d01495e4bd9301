//! Tenants' credentials in the store: API keys (kept as SHA-256 only) and JWT signing keys.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::entities::{api_key, signing_key, tenant};
use super::{Store, StoreError};
use crate::domain::keys::{
    ApiKey, SigningAlgorithm, SigningKey, SigningKeySpec, display_prefix, hash_api_key,
    new_api_key, random_token,
};
use crate::domain::now_ms;
use crate::domain::tenant::Tenant;

/// How stale `last_used_at` may get before a request refreshes it: one write a minute per
/// key instead of one per request.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

impl From<api_key::Model> for ApiKey {
    fn from(model: api_key::Model) -> Self {
        ApiKey {
            id: model.id,
            name: model.name,
            prefix: model.prefix,
            created_at: model.created_at,
            last_used_at: model.last_used_at,
            revoked_at: model.revoked_at,
        }
    }
}

impl TryFrom<signing_key::Model> for SigningKey {
    type Error = StoreError;

    fn try_from(model: signing_key::Model) -> Result<Self, StoreError> {
        let alg = SigningAlgorithm::parse(&model.alg).map_err(|_| {
            StoreError::Corrupt(format!("signing key {} alg {}", model.kid, model.alg))
        })?;
        Ok(SigningKey {
            kid: model.kid,
            tenant_id: model.tenant_id,
            alg,
            secret: model.secret,
            public_key_pem: model.public_key_pem,
            created_at: model.created_at,
            revoked_at: model.revoked_at,
        })
    }
}

/// The two kinds of tenant credential an operator can revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Api,
    Signing,
}

impl Store {
    /// Issues an API key; the key is returned once, and only its hash is stored.
    pub async fn create_api_key(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<(ApiKey, String), StoreError> {
        let key = new_api_key();
        let model = api_key::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            tenant_id: Set(tenant_id),
            name: Set(name.to_owned()),
            prefix: Set(display_prefix(&key)),
            key_hash: Set(hash_api_key(&key)),
            created_at: Set(now_ms()),
            last_used_at: Set(None),
            revoked_at: Set(None),
        };
        let txn = self.begin_write().await?;
        let model = model.insert(&txn).await?;
        txn.commit().await?;
        Ok((model.into(), key))
    }

    pub async fn list_api_keys(&self, tenant_id: i64) -> Result<Vec<ApiKey>, StoreError> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::TenantId.eq(tenant_id))
            .order_by_asc(api_key::Column::CreatedAt)
            .order_by_asc(api_key::Column::Id)
            .all(self.reader())
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect())
    }

    /// Revokes one of the tenant's keys, at once; `false` when the tenant has no such key.
    /// Revoking a revoked key changes nothing.
    pub async fn revoke_key(
        &self,
        kind: KeyKind,
        tenant_id: i64,
        id: &str,
    ) -> Result<bool, StoreError> {
        match kind {
            KeyKind::Api => {
                use api_key::Column;
                self.revoke::<api_key::Entity>(
                    (Column::TenantId, Column::Id, Column::RevokedAt),
                    tenant_id,
                    id,
                )
                .await
            }
            KeyKind::Signing => {
                use signing_key::Column;
                self.revoke::<signing_key::Entity>(
                    (Column::TenantId, Column::Kid, Column::RevokedAt),
                    tenant_id,
                    id,
                )
                .await
            }
        }
    }

    /// Sets `revoked_at` on the row of `E` with this tenant and id, unless it is set already.
    async fn revoke<E: EntityTrait>(
        &self,
        (tenant_column, id_column, revoked_column): (E::Column, E::Column, E::Column),
        tenant_id: i64,
        id: &str,
    ) -> Result<bool, StoreError> {
        let txn = self.begin_write().await?;
        let exists = E::find()
            .filter(tenant_column.eq(tenant_id))
            .filter(id_column.eq(id))
            .one(&txn)
            .await?
            .is_some();
        if exists {
            E::update_many()
                .col_expr(revoked_column, Expr::value(now_ms()))
                .filter(tenant_column.eq(tenant_id))
                .filter(id_column.eq(id))
                .filter(revoked_column.is_null())
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(exists)
    }

    /// The tenant the live (unrevoked) API key with this hash belongs to.
    pub async fn api_key_tenant(&self, key_hash: &str) -> Result<Option<Tenant>, StoreError> {
        let found = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(key_hash))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(self.reader())
            .await?;
        let Some(key) = found else {
            return Ok(None);
        };
        let Some(tenant) = tenant::Entity::find_by_id(key.tenant_id)
            .one(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let now = now_ms();
        if key
            .last_used_at
            .is_none_or(|at| now - at > LAST_USED_RESOLUTION_MS)
        {
            self.touch_api_key(key.id, now).await?;
        }
        Ok(Some(tenant.try_into()?))
    }

    async fn touch_api_key(&self, id: String, now: i64) -> Result<(), StoreError> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Creates a signing key: HS256 keys get a generated secret (returned here once more
    /// only through this call), the others carry the tenant's public key.
    pub async fn create_signing_key(
        &self,
        tenant_id: i64,
        spec: SigningKeySpec,
    ) -> Result<SigningKey, StoreError> {
        let SigningKeySpec {
            alg,
            public_key_pem,
        } = spec;
        let secret = (alg == SigningAlgorithm::Hs256).then(|| random_token(32));
        let model = signing_key::ActiveModel {
            kid: Set(uuid::Uuid::now_v7().simple().to_string()),
            tenant_id: Set(tenant_id),
            alg: Set(alg.as_str().to_owned()),
            secret: Set(secret),
            public_key_pem: Set(public_key_pem),
            created_at: Set(now_ms()),
            revoked_at: Set(None),
        };
        let txn = self.begin_write().await?;
        let model = model.insert(&txn).await?;
        txn.commit().await?;
        model.try_into()
    }

    pub async fn list_signing_keys(&self, tenant_id: i64) -> Result<Vec<SigningKey>, StoreError> {
        signing_key::Entity::find()
            .filter(signing_key::Column::TenantId.eq(tenant_id))
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(self.reader())
            .await?
            .into_iter()
            .map(SigningKey::try_from)
            .collect()
    }

    /// A live signing key of this tenant, by `kid`.
    pub async fn signing_key(
        &self,
        tenant_id: i64,
        kid: &str,
    ) -> Result<Option<SigningKey>, StoreError> {
        signing_key::Entity::find_by_id(kid.to_owned())
            .filter(signing_key::Column::TenantId.eq(tenant_id))
            .filter(signing_key::Column::RevokedAt.is_null())
            .one(self.reader())
            .await?
            .map(SigningKey::try_from)
            .transpose()
    }

    /// The tenant's most recent live HS256 key, which `herald token` signs with.
    pub async fn newest_hs256_key(&self, tenant_id: i64) -> Result<Option<SigningKey>, StoreError> {
        signing_key::Entity::find()
            .filter(signing_key::Column::TenantId.eq(tenant_id))
            .filter(signing_key::Column::Alg.eq(SigningAlgorithm::Hs256.as_str()))
            .filter(signing_key::Column::RevokedAt.is_null())
            .order_by_desc(signing_key::Column::CreatedAt)
            .order_by_desc(signing_key::Column::Kid)
            .one(self.reader())
            .await?
            .map(SigningKey::try_from)
            .transpose()
    }
}
