//! Traces carried into webhooks: the W3C `traceparent` of the publish a fallback came
//! with, and of what caused a webhook message, so each attempt continues that trace.
//! Both columns may be empty (nothing traced), so older Heralds write rows without them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Receipts {
    Table,
    Traceparent,
}

#[derive(DeriveIden)]
enum WebhookMessages {
    Table,
    Traceparent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Receipts::Table)
                    .add_column(string_null(Receipts::Traceparent))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookMessages::Table)
                    .add_column(string_null(WebhookMessages::Traceparent))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Receipts::Table)
                    .drop_column(Receipts::Traceparent)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookMessages::Table)
                    .drop_column(WebhookMessages::Traceparent)
                    .to_owned(),
            )
            .await
    }
}
