//! Upgrades: a Herald runs on a schema a newer Herald has migrated only while the schema's
//! floor says it may (migrations since then only added), and otherwise refuses to start and
//! says why, rather than run its older assumptions against tables that changed.

use migrations::SchemaManager;
use sea_orm::ConnectionTrait;
use tempfile::TempDir;

use crate::cli::herald;
use crate::support::fresh_database_url;

#[actix_web::test]
async fn a_herald_runs_on_a_newer_schema_its_floor_allows_and_refuses_one_it_does_not() {
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

    // A newer Herald added a migration and left the floor: this one runs beside it.
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29991231_000001_from_a_newer_herald', 0)",
    )
    .await
    .unwrap();
    let beside = migrate(url.clone()).await;
    let said = String::from_utf8_lossy(&beside.stderr);
    assert!(beside.status.success(), "{said}");
    assert!(
        said.contains("runs on it unchanged")
            && said.contains("m29991231_000001_from_a_newer_herald"),
        "{said}"
    );

    // A newer Herald contracted the schema and raised the floor past what this one knows.
    migrations::raise_floor(
        &SchemaManager::new(&db),
        "m29991231_000001_from_a_newer_herald",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let refused = migrate(url.clone()).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("newer than this Herald")
            && said.contains("does not know migration m29991231_000001_from_a_newer_herald")
            && said.contains(
                "needs a Herald that knows migration m29991231_000001_from_a_newer_herald"
            ),
        "{said}"
    );
}
