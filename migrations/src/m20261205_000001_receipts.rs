//! Receipts and fallbacks: what Herald knows of an event's fate with each recipient user.
//!
//! `receipt_positions` holds the cumulative facts, one row per user, fact and minute in
//! which that user's pages acknowledged anything: every event of the user's stream up to
//! `seq` was delivered (or, for `read`, read with "mark all read") — the row's `at` is the
//! first acknowledgement of that minute. So an acknowledgement per second per user is one
//! upsert, and the time an event was delivered is known to within a minute.
//!
//! `receipts` holds per-event facts, only where someone can ask for them: a seen mark, an
//! item read by id, and each recipient of a fallback. A fallback's row is pending while
//! `fallback_due_at` is set; the partial index on it is the timers' due-time index, read in
//! order. `fallback_origin` is the seq of the first event of the publish (one per user of a
//! `users` publish), which a cancel names.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ReceiptPositions {
    Table,
    TenantId,
    UserId,
    /// `delivered` or `read`.
    Fact,
    /// Minutes since 1970-01-01, UTC.
    Minute,
    Seq,
    At,
}

#[derive(DeriveIden)]
enum Receipts {
    Table,
    TenantId,
    Seq,
    UserId,
    SeenAt,
    ReadAt,
    FallbackUnless,
    FallbackAfterSecs,
    FallbackOrigin,
    FallbackDueAt,
    /// `fired`, `skipped` (the fact had happened) or `cancelled`; null while pending.
    FallbackOutcome,
    FallbackSettledAt,
}

#[derive(DeriveIden)]
enum TenantUsage {
    Table,
    ReceiptsDelivered,
    ReceiptsSeen,
    ReceiptsRead,
    FallbacksFired,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReceiptPositions::Table)
                    .col(big_integer(ReceiptPositions::TenantId))
                    .col(string(ReceiptPositions::UserId))
                    .col(string(ReceiptPositions::Fact))
                    .col(big_integer(ReceiptPositions::Minute))
                    .col(big_integer(ReceiptPositions::Seq))
                    .col(big_integer(ReceiptPositions::At))
                    .primary_key(
                        Index::create()
                            .col(ReceiptPositions::TenantId)
                            .col(ReceiptPositions::UserId)
                            .col(ReceiptPositions::Fact)
                            .col(ReceiptPositions::Minute),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_receipt_positions_tenant")
                            .from(ReceiptPositions::Table, ReceiptPositions::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Retention drops the positions below what it removed.
        manager
            .create_index(
                Index::create()
                    .name("idx_receipt_positions_seq")
                    .table(ReceiptPositions::Table)
                    .col(ReceiptPositions::TenantId)
                    .col(ReceiptPositions::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Receipts::Table)
                    .col(big_integer(Receipts::TenantId))
                    .col(big_integer(Receipts::Seq))
                    .col(string(Receipts::UserId))
                    .col(big_integer_null(Receipts::SeenAt))
                    .col(big_integer_null(Receipts::ReadAt))
                    .col(string_null(Receipts::FallbackUnless))
                    .col(integer_null(Receipts::FallbackAfterSecs))
                    .col(big_integer_null(Receipts::FallbackOrigin))
                    .col(big_integer_null(Receipts::FallbackDueAt))
                    .col(string_null(Receipts::FallbackOutcome))
                    .col(big_integer_null(Receipts::FallbackSettledAt))
                    .primary_key(
                        Index::create()
                            .col(Receipts::TenantId)
                            .col(Receipts::Seq)
                            .col(Receipts::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_receipts_tenant")
                            .from(Receipts::Table, Receipts::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Both engines take partial indexes: only pending timers, and only fallbacks.
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX idx_receipts_fallback_due ON receipts (fallback_due_at) \
             WHERE fallback_due_at IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_receipts_fallback_origin ON receipts (tenant_id, fallback_origin) \
             WHERE fallback_origin IS NOT NULL",
        )
        .await?;
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            TenantUsage::ReceiptsDelivered,
            TenantUsage::ReceiptsSeen,
            TenantUsage::ReceiptsRead,
            TenantUsage::FallbacksFired,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(TenantUsage::Table)
                        .add_column(big_integer(column).default(0))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Receipts::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(ReceiptPositions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
