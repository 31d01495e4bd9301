//! The outbox's due messages indexed per endpoint, soonest first: the workers claim an
//! endpoint's next few (as many as it has free slots) and find which endpoints have any,
//! so a busy endpoint's backlog is never read past to reach another's.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX idx_webhook_messages_endpoint_due ON webhook_messages \
             (endpoint_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("DROP INDEX idx_webhook_messages_due")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX idx_webhook_messages_due ON webhook_messages \
             (next_attempt_at) WHERE next_attempt_at IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("DROP INDEX idx_webhook_messages_endpoint_due")
            .await?;
        Ok(())
    }
}
