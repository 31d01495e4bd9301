//! Upgrades: a Herald refuses to run against a database a newer Herald has migrated, and
//! says so, rather than run its older assumptions against tables it does not know.

use sea_orm::ConnectionTrait;
use tempfile::TempDir;

use crate::cli::herald;
use crate::support::fresh_database_url;

#[actix_web::test]
async fn a_herald_refuses_a_schema_newer_than_it_knows_and_says_so() {
    let dir = TempDir::new().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let migrate = |url: String| async move {
        tokio::task::spawn_blocking(move || herald(&url, &["migrate"]))
            .await
            .unwrap()
    };
    assert!(migrate(url.clone()).await.status.success());
    // Nothing changed: migrating again is fine.
    assert!(migrate(url.clone()).await.status.success());

    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29991231_000001_from_a_newer_herald', 0)",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let refused = migrate(url.clone()).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("newer than this Herald")
            && said.contains("m29991231_000001_from_a_newer_herald"),
        "{said}"
    );
}
