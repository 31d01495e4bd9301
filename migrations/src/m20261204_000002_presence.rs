//! Presence: per user who has ever had a stream, whether the deployment counts them online,
//! when their last stream closed, and — while they have none — when they go offline if
//! none opens (`offline_due_at`). Rows change only on a user's transitions (first stream,
//! last stream gone, offline), so `user.online` and `user.offline` are each decided once for
//! the whole deployment, in the transaction that writes the message.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Presence {
    Table,
    TenantId,
    UserId,
    Online,
    /// When the user last came online.
    OnlineAt,
    /// When their last stream closed; null if never.
    LastSeenAt,
    OfflineDueAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Presence::Table)
                    .col(big_integer(Presence::TenantId))
                    .col(string(Presence::UserId))
                    .col(boolean(Presence::Online))
                    .col(big_integer(Presence::OnlineAt))
                    .col(big_integer_null(Presence::LastSeenAt))
                    .col(big_integer_null(Presence::OfflineDueAt))
                    .primary_key(
                        Index::create()
                            .col(Presence::TenantId)
                            .col(Presence::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_presence_tenant")
                            .from(Presence::Table, Presence::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_presence_due ON presence (offline_due_at) \
                 WHERE offline_due_at IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Presence::Table).if_exists().to_owned())
            .await
    }
}
