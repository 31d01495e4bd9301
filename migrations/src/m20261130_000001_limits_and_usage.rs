//! Tenant limits and usage: each tenant's own limits (JSON; absent fields take the
//! server's defaults), and what each tenant did per UTC day.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Limits,
}

#[derive(DeriveIden)]
enum TenantUsage {
    Table,
    TenantId,
    /// Days since 1970-01-01, UTC.
    Day,
    Published,
    RateLimited,
    Delivered,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(text(Tenants::Limits).default("{}"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TenantUsage::Table)
                    .col(big_integer(TenantUsage::TenantId))
                    .col(big_integer(TenantUsage::Day))
                    .col(big_integer(TenantUsage::Published).default(0))
                    .col(big_integer(TenantUsage::RateLimited).default(0))
                    .col(big_integer(TenantUsage::Delivered).default(0))
                    .primary_key(
                        Index::create()
                            .col(TenantUsage::TenantId)
                            .col(TenantUsage::Day),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_usage_tenant")
                            .from_tbl(TenantUsage::Table)
                            .from_col(TenantUsage::TenantId)
                            .to_tbl(Tenants::Table)
                            .to_col(Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(TenantUsage::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::Limits)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
