//! The first schema: tenants, their API and signing keys, the event log and idempotency
//! records.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    Name,
    AllowedOrigins,
    RetentionMaxAgeSecs,
    RetentionMaxEvents,
    Epoch,
    NextSeq,
    PrunedSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    TenantId,
    Alg,
    Secret,
    PublicKeyPem,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    TenantId,
    Seq,
    TargetKind,
    Target,
    EventType,
    Data,
    CreatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    TenantId,
    IdemKey,
    RequestHash,
    Receipts,
    CreatedAt,
}

fn tenant_fk(table: impl IntoIden, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from_tbl(table)
        .from_col(Alias::new("tenant_id"))
        .to_tbl(Tenants::Table)
        .to_col(Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Tenants::Id))
                    .col(string_uniq(Tenants::Slug))
                    .col(string(Tenants::Name))
                    // A JSON array of origins, e.g. ["https://app.example.com"].
                    .col(text(Tenants::AllowedOrigins))
                    .col(big_integer_null(Tenants::RetentionMaxAgeSecs))
                    .col(big_integer_null(Tenants::RetentionMaxEvents))
                    // Changes whenever the log starts over, so ids from an old log are
                    // recognised as such instead of being mistaken for positions.
                    .col(string(Tenants::Epoch))
                    // The next sequence number to hand out. The appending transaction locks
                    // this row, so sequence order is commit order.
                    .col(big_integer(Tenants::NextSeq))
                    // Every seq <= this may have been removed by retention.
                    .col(big_integer(Tenants::PrunedSeq).default(0))
                    .col(big_integer(Tenants::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(string(ApiKeys::Id).primary_key())
                    .col(big_integer(ApiKeys::TenantId))
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Prefix))
                    // Hex SHA-256 of the whole key; the key itself is never stored.
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(big_integer(ApiKeys::CreatedAt))
                    .col(big_integer_null(ApiKeys::LastUsedAt))
                    .col(big_integer_null(ApiKeys::RevokedAt))
                    .foreign_key(&mut tenant_fk(ApiKeys::Table, "fk_api_keys_tenant"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_api_keys_tenant")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(string(SigningKeys::Kid).primary_key())
                    .col(big_integer(SigningKeys::TenantId))
                    .col(string(SigningKeys::Alg))
                    .col(text_null(SigningKeys::Secret))
                    .col(text_null(SigningKeys::PublicKeyPem))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer_null(SigningKeys::RevokedAt))
                    .foreign_key(&mut tenant_fk(SigningKeys::Table, "fk_signing_keys_tenant"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_signing_keys_tenant")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::TenantId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(big_integer(Events::TenantId))
                    .col(big_integer(Events::Seq))
                    // "user", "topic" or "broadcast" (whose target is "").
                    .col(string(Events::TargetKind))
                    .col(string(Events::Target))
                    .col(string(Events::EventType))
                    // Compact JSON text of the published value.
                    .col(text(Events::Data))
                    .col(big_integer(Events::CreatedAt))
                    .primary_key(Index::create().col(Events::TenantId).col(Events::Seq))
                    .foreign_key(&mut tenant_fk(Events::Table, "fk_events_tenant"))
                    .to_owned(),
            )
            .await?;
        // Replay reads one stream (a user, a topic, the broadcasts) of one tenant from a
        // position onwards: this index serves exactly that range scan.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_events_replay")
                    .table(Events::Table)
                    .col(Events::TenantId)
                    .col(Events::TargetKind)
                    .col(Events::Target)
                    .col(Events::Seq)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(big_integer(IdempotencyKeys::TenantId))
                    .col(string(IdempotencyKeys::IdemKey))
                    .col(string(IdempotencyKeys::RequestHash))
                    // JSON of the receipts the first request was answered with.
                    .col(text(IdempotencyKeys::Receipts))
                    .col(big_integer(IdempotencyKeys::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::TenantId)
                            .col(IdempotencyKeys::IdemKey),
                    )
                    .foreign_key(&mut tenant_fk(
                        IdempotencyKeys::Table,
                        "fk_idempotency_keys_tenant",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_idempotency_keys_created")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            Events::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
