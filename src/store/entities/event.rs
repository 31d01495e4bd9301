use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub target_kind: String,
    pub target: String,
    pub event_type: String,
    pub data: String,
    pub created_at: i64,
    /// For an inbox item: its place among its stream's inbox items (1, 2, 3…).
    pub inbox_ordinal: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The events of `user`'s stream that are theirs to read or receipt: their own and the
/// tenant's broadcasts (topics are shared, not the user's).
pub fn user_or_broadcast(user: &str) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(
            sea_orm::Condition::all()
                .add(Column::TargetKind.eq("user"))
                .add(Column::Target.eq(user)),
        )
        .add(Column::TargetKind.eq("broadcast"))
}
