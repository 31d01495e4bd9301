use sea_orm::entity::prelude::*;

/// One message to one endpoint, from the moment it is due until it is delivered or has
/// failed for good (and then until it is pruned).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: i64,
    pub endpoint_id: String,
    #[sea_orm(column_name = "type")]
    pub kind: String,
    /// The JSON body every attempt sends.
    pub body: String,
    pub created_at: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub next_attempt_at: Option<i64>,
    /// Until then, the node that claimed it attempts it.
    pub claimed_until: Option<i64>,
    pub attempts: i32,
    /// The W3C `traceparent` of what caused it, when that was traced.
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
