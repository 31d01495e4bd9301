//! Outbound webhooks: a tenant's endpoints, the outbox of messages to them, and every
//! attempt at one.
//!
//! A message is one row per endpoint it goes to, written before it counts as sent (in the
//! transaction of whatever caused it). `next_attempt_at` says when it is due; a node
//! that takes it sets `claimed_until` (a lease a little longer than an attempt may last),
//! so one node attempts it at a time and a node that dies mid-attempt leaves it to be
//! taken again once the lease is over.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    /// JSON: the message types it gets, or `["*"]`.
    Events,
    Description,
    /// `whsec_…`: signs every message.
    Secret,
    /// The secret before the last rotation, which also signs until `previous_until`.
    PreviousSecret,
    PreviousUntil,
    CreatedAt,
    DisabledAt,
    /// Why it was disabled: `gone` (410) or `failing`.
    DisabledReason,
    /// The first failed attempt since its last success; null while it succeeds.
    FailingSince,
}

#[derive(DeriveIden)]
enum WebhookMessages {
    Table,
    Id,
    TenantId,
    EndpointId,
    Type,
    /// The JSON body, exactly as every attempt sends it.
    Body,
    CreatedAt,
    /// `pending`, `delivered` or `failed`.
    Status,
    /// When it is due next; null once delivered or failed for good.
    NextAttemptAt,
    ClaimedUntil,
    Attempts,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    MessageId,
    At,
    StatusCode,
    Error,
    DurationMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(string(WebhookEndpoints::Id).primary_key())
                    .col(big_integer(WebhookEndpoints::TenantId))
                    .col(text(WebhookEndpoints::Url))
                    .col(text(WebhookEndpoints::Events))
                    .col(text(WebhookEndpoints::Description))
                    .col(string(WebhookEndpoints::Secret))
                    .col(string_null(WebhookEndpoints::PreviousSecret))
                    .col(big_integer_null(WebhookEndpoints::PreviousUntil))
                    .col(big_integer(WebhookEndpoints::CreatedAt))
                    .col(big_integer_null(WebhookEndpoints::DisabledAt))
                    .col(string_null(WebhookEndpoints::DisabledReason))
                    .col(big_integer_null(WebhookEndpoints::FailingSince))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_endpoints_tenant")
                            .from(WebhookEndpoints::Table, WebhookEndpoints::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_endpoints_tenant")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::TenantId)
                    .col(WebhookEndpoints::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookMessages::Table)
                    .col(string(WebhookMessages::Id).primary_key())
                    .col(big_integer(WebhookMessages::TenantId))
                    .col(string(WebhookMessages::EndpointId))
                    .col(string(WebhookMessages::Type))
                    .col(text(WebhookMessages::Body))
                    .col(big_integer(WebhookMessages::CreatedAt))
                    .col(string(WebhookMessages::Status))
                    .col(big_integer_null(WebhookMessages::NextAttemptAt))
                    .col(big_integer_null(WebhookMessages::ClaimedUntil))
                    .col(integer(WebhookMessages::Attempts))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_messages_endpoint")
                            .from(WebhookMessages::Table, WebhookMessages::EndpointId)
                            .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The due messages, soonest first: what the workers claim.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_webhook_messages_due ON webhook_messages \
                 (next_attempt_at) WHERE next_attempt_at IS NOT NULL",
            )
            .await?;
        // An endpoint's deliveries, newest first; and what pruning removes.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_messages_endpoint")
                    .table(WebhookMessages::Table)
                    .col(WebhookMessages::EndpointId)
                    .col(WebhookMessages::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_messages_created")
                    .table(WebhookMessages::Table)
                    .col(WebhookMessages::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(
                        big_integer(WebhookAttempts::Id)
                            .primary_key()
                            .auto_increment(),
                    )
                    .col(string(WebhookAttempts::MessageId))
                    .col(big_integer(WebhookAttempts::At))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(text_null(WebhookAttempts::Error))
                    .col(big_integer(WebhookAttempts::DurationMs))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_attempts_message")
                            .from(WebhookAttempts::Table, WebhookAttempts::MessageId)
                            .to(WebhookMessages::Table, WebhookMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_attempts_message")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::MessageId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookAttempts::Table.into_iden(),
            WebhookMessages::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
