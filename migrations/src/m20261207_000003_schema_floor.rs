//! The schema floor: the oldest Herald that may still run against this database.
//!
//! Nodes are upgraded one at a time, so for a while an older Herald serves on a schema a
//! newer one has migrated. Whether it may is the schema's to say, not the older node's to
//! guess: the floor names a migration, and a Herald that knows that migration may run on
//! the schema even where later ones are unknown to it. Migrations that only add leave the
//! floor where it is; one that removes or changes what older versions read raises it
//! (see `lib.rs`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SchemaFloor {
    #[sea_orm(iden = "herald_schema_floor")]
    Table,
    Id,
    /// The name of the oldest migration a Herald must know to run on this schema.
    OldestCompatible,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SchemaFloor::Table)
                    .col(integer(SchemaFloor::Id).primary_key())
                    .col(string(SchemaFloor::OldestCompatible))
                    .to_owned(),
            )
            .await?;
        // Every Herald before this one refuses any schema newer than it knows, so the floor
        // starts at the first Herald that reads it.
        let first = Query::insert()
            .into_table(SchemaFloor::Table)
            .columns([SchemaFloor::Id, SchemaFloor::OldestCompatible])
            .values_panic([1.into(), self.name().into()])
            .to_owned();
        manager.exec_stmt(first).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SchemaFloor::Table).to_owned())
            .await
    }
}
