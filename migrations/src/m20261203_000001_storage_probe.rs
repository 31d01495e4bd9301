//! The storage probe: one scratch row that `/readyz` rewrites, while the event log's last
//! commit found the storage full or failing, to learn whether writes work again. It holds
//! nothing else and nothing reads it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StorageProbe {
    Table,
    ProbedAt,
    Padding,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StorageProbe::Table)
                    .if_not_exists()
                    .col(big_integer(StorageProbe::ProbedAt))
                    .col(blob(StorageProbe::Padding))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StorageProbe::Table).to_owned())
            .await
    }
}
