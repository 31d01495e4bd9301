use sea_orm::entity::prelude::*;

/// A user's cumulative fact in one minute: every event of their stream up to `seq` was
/// delivered (or read), first acknowledged at `at` within that minute.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "receipt_positions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// `delivered` or `read`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub fact: String,
    /// Minutes since 1970-01-01, UTC.
    #[sea_orm(primary_key, auto_increment = false)]
    pub minute: i64,
    pub seq: i64,
    pub at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
