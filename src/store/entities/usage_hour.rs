use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_hours")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: i64,
    /// Hours since 1970-01-01, UTC.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: i64,
    pub published: i64,
    pub delivered: i64,
    pub rate_limited: i64,
    pub fallbacks_fired: i64,
    pub streams_open: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
