//! The notification inbox: an event published with `"inbox": true` carries its place among
//! its stream's inbox items (`inbox_ordinal`: 1, 2, 3… per user, and per tenant for
//! broadcasts), so how many items lie after any point is two index look-ups, whatever the
//! number of items. Read state is per user and stored only when the user acts: a read
//! cursor (every item up to it is read) and per-item marks that say otherwise.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    InboxOrdinal,
}

/// How many inbox items each stream (a user's, or the tenant's broadcasts) has ever had.
#[derive(DeriveIden)]
enum InboxTotals {
    Table,
    TenantId,
    TargetKind,
    Target,
    Items,
}

/// Each user's read cursor: every item with a seq up to `read_through` is read (unless
/// marked unread); `version` counts the user's read and unread requests, which orders
/// the counts they answer.
#[derive(DeriveIden)]
enum InboxReaders {
    Table,
    TenantId,
    UserId,
    ReadThrough,
    Version,
}

/// Items marked against the cursor: read above it, unread at or below it.
#[derive(DeriveIden)]
enum InboxMarks {
    Table,
    TenantId,
    UserId,
    Seq,
    Read,
}

fn tenant_key(
    table: impl IntoIden,
    name: &str,
    column: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from_tbl(table)
        .from_col(column)
        .to_tbl(Tenants::Table)
        .to_col(Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .add_column(big_integer_null(Events::InboxOrdinal))
                    .to_owned(),
            )
            .await?;
        // Only inbox items are in it; both engines take a partial index.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_events_inbox ON events \
                 (tenant_id, target_kind, target, seq, inbox_ordinal) \
                 WHERE inbox_ordinal IS NOT NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboxTotals::Table)
                    .col(big_integer(InboxTotals::TenantId))
                    .col(string(InboxTotals::TargetKind))
                    .col(string(InboxTotals::Target))
                    .col(big_integer(InboxTotals::Items))
                    .primary_key(
                        Index::create()
                            .col(InboxTotals::TenantId)
                            .col(InboxTotals::TargetKind)
                            .col(InboxTotals::Target),
                    )
                    .foreign_key(&mut tenant_key(
                        InboxTotals::Table,
                        "fk_inbox_totals_tenant",
                        InboxTotals::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboxReaders::Table)
                    .col(big_integer(InboxReaders::TenantId))
                    .col(string(InboxReaders::UserId))
                    .col(big_integer(InboxReaders::ReadThrough))
                    .col(big_integer(InboxReaders::Version))
                    .primary_key(
                        Index::create()
                            .col(InboxReaders::TenantId)
                            .col(InboxReaders::UserId),
                    )
                    .foreign_key(&mut tenant_key(
                        InboxReaders::Table,
                        "fk_inbox_readers_tenant",
                        InboxReaders::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(InboxMarks::Table)
                    .col(big_integer(InboxMarks::TenantId))
                    .col(string(InboxMarks::UserId))
                    .col(big_integer(InboxMarks::Seq))
                    .col(boolean(InboxMarks::Read))
                    .primary_key(
                        Index::create()
                            .col(InboxMarks::TenantId)
                            .col(InboxMarks::UserId)
                            .col(InboxMarks::Seq),
                    )
                    .foreign_key(&mut tenant_key(
                        InboxMarks::Table,
                        "fk_inbox_marks_tenant",
                        InboxMarks::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            InboxMarks::Table.into_iden(),
            InboxReaders::Table.into_iden(),
            InboxTotals::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS idx_events_inbox")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .drop_column(Events::InboxOrdinal)
                    .to_owned(),
            )
            .await
    }
}
