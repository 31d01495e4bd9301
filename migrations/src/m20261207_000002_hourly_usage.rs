//! Hourly usage: each tenant's figures per UTC hour, for the console's charts of the last
//! two days. Counts are added by every node, as the daily ones are; `streams_open` is the
//! sum of each node's most streams open at once in the hour.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UsageHours {
    Table,
    TenantId,
    /// Hours since 1970-01-01, UTC.
    Hour,
    Published,
    Delivered,
    RateLimited,
    FallbacksFired,
    StreamsOpen,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsageHours::Table)
                    .col(big_integer(UsageHours::TenantId))
                    .col(big_integer(UsageHours::Hour))
                    .col(big_integer(UsageHours::Published).default(0))
                    .col(big_integer(UsageHours::Delivered).default(0))
                    .col(big_integer(UsageHours::RateLimited).default(0))
                    .col(big_integer(UsageHours::FallbacksFired).default(0))
                    .col(big_integer(UsageHours::StreamsOpen).default(0))
                    .primary_key(
                        Index::create()
                            .col(UsageHours::TenantId)
                            .col(UsageHours::Hour),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_usage_hours_tenant")
                            .from_tbl(UsageHours::Table)
                            .from_col(UsageHours::TenantId)
                            .to_tbl(Tenants::Table)
                            .to_col(Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Retention and the deployment-wide charts read by hour across tenants.
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_hours_hour")
                    .table(UsageHours::Table)
                    .col(UsageHours::Hour)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsageHours::Table).to_owned())
            .await
    }
}
