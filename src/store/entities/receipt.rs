use sea_orm::entity::prelude::*;

/// What Herald knows of one event with one recipient user, where someone can ask: a seen
/// mark, a read by id, a fallback (pending while `fallback_due_at` is set).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "receipts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub seen_at: Option<i64>,
    pub read_at: Option<i64>,
    pub fallback_unless: Option<String>,
    pub fallback_after_secs: Option<i32>,
    /// The seq of the first event of the publish the fallback came with.
    pub fallback_origin: Option<i64>,
    pub fallback_due_at: Option<i64>,
    /// `fired`, `skipped` or `cancelled`; null while pending.
    pub fallback_outcome: Option<String>,
    pub fallback_settled_at: Option<i64>,
    /// The W3C `traceparent` of what caused it, when that was traced.
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
