use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub slug: String,
    pub name: String,
    pub allowed_origins: String,
    pub retention_max_age_secs: Option<i64>,
    pub retention_max_events: Option<i64>,
    pub epoch: String,
    pub next_seq: i64,
    pub pruned_seq: i64,
    pub created_at: i64,
    /// `TenantLimits` as JSON.
    pub limits: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
